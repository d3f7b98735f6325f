"""Every activity of the product, built from the settings: the one place that wires providers, stores and engines."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio.client import Client

from activities.agent_runs import AgentActivities
from activities.claude_agent_engine import ClaudeAgentEngine
from activities.context import ConversationStore
from activities.history import HistoryActivities
from activities.llm import LlmActivities
from activities.notify import NotifyActivities
from activities.openai_agent_engine import OpenAIAgentEngine
from activities.providers.anthropic_provider import AnthropicProvider
from activities.providers.openai_provider import OpenAIProvider
from activities.tools import ToolActivities
from archives.activity import ArchiveActivities
from config.settings import Settings
from payloads.blobs import blob_store
from tools.catalog import REGISTRY


def build_activities(settings: Settings, client: Client) -> list[Callable[..., Any]]:
    """The activities a worker registers; `client`'s codec lets archives embed offloaded payloads decoded."""
    anthropic = AnthropicProvider(settings.anthropic, settings.llm_timeout_seconds)
    openai = OpenAIProvider(settings.openai, settings.llm_timeout_seconds)
    context = ConversationStore(blob_store(settings.blobs), settings.tool_output_max_chars)  # one cache for all
    llm = LlmActivities(settings, REGISTRY, {"anthropic": anthropic, "openai": openai}, context)
    tools = ToolActivities(settings, REGISTRY, context)
    history = HistoryActivities(settings)
    notify = NotifyActivities(settings)
    agents = AgentActivities(
        settings,
        REGISTRY,
        {"openai": OpenAIAgentEngine(openai, REGISTRY), "anthropic": ClaudeAgentEngine(anthropic, REGISTRY)},
    )
    archive = ArchiveActivities(settings, context.blobs, client.data_converter.payload_codec, context)
    return [
        llm.call_llm,
        tools.run_tool,
        agents.invoke_agent,
        notify.send_notification,
        archive.archive_run,
        history.history_limits,
    ]
