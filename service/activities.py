"""Every activity of the product, built from the settings: the one place that wires providers, stores and engines."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from temporalio.client import Client

from activities.agent_specs import AgentResolver, AgentSpecActivities, SpecStore
from activities.approval_notify import ApprovalNotifyActivities
from activities.black_box.checkpoint import Checkpoints
from activities.black_box.claude_engine import ClaudeAgentEngine
from activities.black_box.invoke_agent import BlackBoxActivities
from activities.black_box.openai_engine import OpenAIAgentEngine
from activities.conversation_store import ConversationStore
from activities.guarded_provider import GuardedProvider
from activities.history import HistoryActivities
from activities.llm import LlmActivities
from activities.notify import NotifyActivities
from activities.providers.anthropic_provider import AnthropicProvider
from activities.providers.openai_provider import OpenAIProvider
from activities.run_tool import ToolActivities
from activities.spend_guard import SpendGuard
from activities.tool_executor import ToolExecutor
from archives.activity import ArchiveActivities
from config.settings import Settings
from payloads.blobs import blob_store
from tools.catalog import REGISTRY
from tools.deps import ToolDeps
from tools.registry import Registry


def build_activities(settings: Settings, client: Client, registry: Registry | None = None) -> list[Callable[..., Any]]:
    """The activities a worker registers; `client`'s codec lets archives embed offloaded payloads decoded.

    `registry` is the worker's loaded one (`tools.loader.load_registry`: built-ins, TOOL_MODULES, the agents
    file, MCP servers); without it, the built-ins only.
    """
    registry = REGISTRY if registry is None else registry
    anthropic = AnthropicProvider(settings.anthropic, settings.llm_timeout_seconds, streaming=settings.llm_streaming)
    openai = OpenAIProvider(settings.openai, settings.llm_timeout_seconds, streaming=settings.llm_streaming)
    if settings.spend_limits is not None:  # every model call reserves and settles (activities/spend_guard.py)
        guard = SpendGuard(client, settings.spend_limits, settings.spend_ledger_task_queue)
        anthropic = cast(AnthropicProvider, GuardedProvider(anthropic, guard))
        openai = cast(OpenAIProvider, GuardedProvider(openai, guard))
    context = ConversationStore(
        blob_store(settings.blobs, settings.payloads), settings.tool_output_max_chars
    )  # one cache for all
    specs = SpecStore(context.blobs)
    resolver = AgentResolver(registry, specs)
    pinning = AgentSpecActivities(
        registry, specs, llm_task_queues=settings.llm_task_queues, default_model=settings.default_model
    )
    llm = LlmActivities(settings, resolver, {"anthropic": anthropic, "openai": openai}, context)
    executor = ToolExecutor(registry, ToolDeps.from_settings(settings))  # one for run_tool and the black boxes
    tools = ToolActivities(executor, context)
    history = HistoryActivities(settings)
    notify = NotifyActivities(settings)
    agents = BlackBoxActivities(
        settings,
        resolver,
        {"openai": OpenAIAgentEngine(openai, registry), "anthropic": ClaudeAgentEngine(anthropic, registry)},
        executor,
        Checkpoints(context.blobs),
    )
    approvals = ApprovalNotifyActivities(settings.gateway)
    archive = ArchiveActivities(settings, context.blobs, client.data_converter.payload_codec, context)
    return [
        llm.call_llm,
        tools.run_tool,
        agents.invoke_agent,
        notify.send_notification,
        archive.archive_run,
        history.history_limits,
        pinning.resolve_agents,
        approvals.notify_approval,
    ]
