"""The worker process: polls the task queue and runs every agent workflow and activity.

    python worker.py            # configuration from the environment, see README.md

SIGTERM or SIGINT stops polling, lets in-flight activities finish (up to
WORKER_GRACEFUL_SHUTDOWN_SECONDS), then exits.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from datetime import timedelta

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker

from activities.agent_runs import AgentActivities
from activities.claude_agent_engine import ClaudeAgentEngine
from activities.context import ConversationStore
from activities.history import HistoryActivities
from activities.llm import LlmActivities
from activities.notify import NotifyActivities
from activities.openai_agent_engine import OpenAIAgentEngine
from activities.providers.anthropic_provider import AnthropicProvider
from activities.tools import ToolActivities
from config.settings import ConfigError, Settings
from config.temporal import connect
from models.search_attributes import ALL_KEYS
from tools.catalog import REGISTRY
from workflows.agent_loop import AgentLoopWorkflow
from workflows.blackbox import BlackBoxAgentWorkflow
from workflows.hybrid import HybridAgentWorkflow

WORKFLOWS = [AgentLoopWorkflow, BlackBoxAgentWorkflow, HybridAgentWorkflow]

log = logging.getLogger("worker")


def build_worker(client: Client, settings: Settings) -> Worker:
    """A worker with every workflow and activity of the product registered."""
    anthropic = AnthropicProvider(settings.llm_timeout_seconds)
    context = ConversationStore(settings.blob_store(), settings.tool_output_max_chars)  # one cache for both
    llm = LlmActivities(settings, REGISTRY, {"anthropic": anthropic}, context)
    tools = ToolActivities(settings, REGISTRY, context)
    history = HistoryActivities(settings)
    notify = NotifyActivities(settings)
    agents = AgentActivities(
        settings,
        REGISTRY,
        {"openai": OpenAIAgentEngine(REGISTRY, settings.llm_timeout_seconds), "anthropic": ClaudeAgentEngine(anthropic, REGISTRY)},
    )
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=WORKFLOWS,
        activities=[llm.call_llm, tools.run_tool, agents.invoke_agent, notify.send_notification, history.history_limits],
        max_concurrent_activities=settings.max_concurrent_activities,
        max_cached_workflows=settings.max_cached_workflows,
        graceful_shutdown_timeout=timedelta(seconds=settings.graceful_shutdown_seconds),
    )


async def ensure_search_attributes(client: Client) -> None:
    """Register AgentName/AgentStatus/AgentPattern/CustomerId if missing; without them every run would stall."""
    wanted = {key.name for key in ALL_KEYS}
    try:
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
    except RPCError as exc:
        if exc.status != RPCStatusCode.UNIMPLEMENTED:
            log.warning("cannot list search attributes (%s); assuming %s are registered", exc.message, sorted(wanted))
            return
        # The time-skipping test server cannot list them but can add them (and rejects undeclared upserts).
        missing = sorted(wanted)
    else:
        missing = sorted(wanted - set(listed.custom_attributes))
    if not missing:
        return
    try:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=client.namespace,
                search_attributes={name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for name in missing},
            )
        )
        log.info("registered search attributes %s", missing)
    except RPCError as exc:
        if exc.status == RPCStatusCode.ALREADY_EXISTS:
            return
        raise ConfigError(
            f"search attributes {missing} are not registered in namespace {client.namespace!r} and this worker "
            f"may not add them ({exc.message}). Add them once, e.g. `temporal operator search-attribute create "
            + " ".join(f"--name {m} --type Keyword" for m in missing)
            + "`"
        ) from None


async def serve(settings: Settings) -> None:
    """Connect, register search attributes, and run until SIGTERM/SIGINT."""
    try:
        client = await connect()
    except RuntimeError as exc:  # the SDK raises RuntimeError when the first RPC fails
        raise ConfigError(f"cannot reach Temporal ({exc}); check TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE / TLS settings") from None
    await ensure_search_attributes(client)
    worker = build_worker(client, settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with worker:
        log.info("worker polling task queue %r on %s (pid %d)", settings.task_queue, client.service_client.config.target_host, os.getpid())
        await stop.wait()
        log.info("shutting down: waiting up to %ss for in-flight activities", settings.graceful_shutdown_seconds)
    log.info("worker stopped")


def main() -> int:
    """Entry point; returns the process exit code."""
    logging.basicConfig(level=os.environ.get("LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_env()
        asyncio.run(serve(settings))
    except ConfigError as exc:
        print(f"worker: configuration error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # sdk-python#300: avoid a rare abort at interpreter exit
