"""The worker process: polls the task queue and runs every agent workflow and activity.

    python worker.py            # configuration from the environment, see docs/configuration.md
    python worker.py --debug    # a configuration error also prints its traceback (as LOG_LEVEL=DEBUG does)

SIGTERM or SIGINT stops polling, lets in-flight activities finish (up to
WORKER_GRACEFUL_SHUTDOWN_SECONDS), then exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from datetime import timedelta

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client
from temporalio.common import WorkerDeploymentVersion
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Worker, WorkerDeploymentConfig

from config.cli import exit_now, run_command
from config.settings import Settings
from models.errors import ConfigError
from models.search_attributes import ALL_KEYS
from payloads.blobs import blob_store, check_blob_store
from service.connect import connect, metrics_runtime
from service.memory import trimming
from service.plugin import AgentServicePlugin, worker_client
from telemetry.health import Health, HealthServer
from telemetry.tracing import shutdown_tracing
from tools.loader import LoadedTools, load_registry
from tools.registry import Registry

log = logging.getLogger("worker")


def build_worker(client: Client, settings: Settings, registry: Registry | None = None) -> Worker:
    """A worker for `settings`: its workflows and activities come from AgentServicePlugin(settings, registry).

    `registry` is what `load_registry(settings)` loaded (None: the built-in tools and agents only). The
    payload codec stays `client`'s: a worker reads and writes payloads as the client it was given.
    """
    return Worker(
        worker_client(client),
        task_queue=settings.task_queue,
        plugins=[AgentServicePlugin(settings, registry)],
        max_concurrent_activities=settings.max_concurrent_activities,
        max_concurrent_workflow_tasks=settings.max_concurrent_workflow_tasks,
        max_cached_workflows=settings.max_cached_workflows,
        graceful_shutdown_timeout=timedelta(seconds=settings.graceful_shutdown_seconds),
        # Heartbeats carry the run's cancellation back to an activity and prove the worker alive: every beat
        # (a third of the 2 s heartbeat timeout, activities/heartbeat.py) goes out, so a stall of 1.3 s is tolerated.
        max_heartbeat_throttle_interval=timedelta(seconds=0.5),
        # A killed worker's sticky queue holds the run's next task this long before another worker may take it
        # (the SDK's default is 10 s). A live but saturated worker that misses it costs one replay elsewhere, not a failure.
        sticky_queue_schedule_to_start_timeout=timedelta(milliseconds=settings.sticky_timeout_ms),
        identity=settings.identity,
        deployment_config=deployment_config(settings),
    )


def deployment_config(settings: Settings) -> WorkerDeploymentConfig | None:
    """The Worker Deployment version this worker serves (WORKER_DEPLOYMENT_NAME), or None: unversioned.

    No default behavior: each workflow type declares its own (workflows/versioning.py), so a new type that
    forgets to is refused by the SDK instead of silently pinned.
    """
    deployment = settings.deployment
    if deployment.name is None:
        return None
    version = WorkerDeploymentVersion(deployment_name=deployment.name, build_id=deployment.build_id)
    return WorkerDeploymentConfig(version=version, use_worker_versioning=True)


MODEL_CALL_ACTIVITIES = ("call_llm", "invoke_agent")
"""The activities that call a provider: on its own task queue when LLM_RATE_LIMITS names it."""


def build_llm_workers(client: Client, settings: Settings, registry: Registry | None = None) -> list[Worker]:
    """One worker per provider LLM_RATE_LIMITS names, polling that provider's queue for its model calls.

    The server enforces `max_task_queue_activities_per_second` per task queue, across every worker that polls
    it: ten replicas together send at most the configured rate, not ten times it.
    """
    from service.activities import build_activities

    workers = []
    for provider, rate in settings.llm_rate_limits:
        activities = [a for a in build_activities(settings, client, registry) if a.__name__ in MODEL_CALL_ACTIVITIES]
        workers.append(
            Worker(
                worker_client(client),
                task_queue=settings.llm_task_queue(provider),
                activities=activities,
                max_task_queue_activities_per_second=rate,
                max_concurrent_activities=settings.llm_max_concurrent,
                graceful_shutdown_timeout=timedelta(seconds=settings.graceful_shutdown_seconds),
                max_heartbeat_throttle_interval=timedelta(seconds=1),
                identity=settings.identity,
                build_id=settings.deployment.build_id,  # activities only, unversioned: as AgentServicePlugin.configure_worker
            )
        )
    return workers


async def ensure_search_attributes(client: Client) -> None:
    """Register AgentName/AgentStatus/AgentPattern/CustomerId/TenantId if missing; without them every run would stall."""
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
    """Check the blob store, serve /healthz (if configured), connect, register search attributes, run until SIGTERM."""
    await asyncio.to_thread(check_blob_store, blob_store(settings.blobs, settings.payloads))
    health = Health()
    health_server = await HealthServer(health, settings.health.host, settings.health.port).start()
    try:
        await run_worker(settings, health)
    finally:
        await health_server.stop()


async def run_worker(settings: Settings, health: Health) -> None:
    """The worker's life: checking its agents and tools, starting (503), polling (200), draining (503)."""
    loaded = await load_registry(settings)  # AgentsFileInvalid (a ConfigError) stops the worker before Temporal
    try:
        await _run_worker(settings, health, loaded)
    finally:
        await loaded.close()  # MCP sessions (and stdio servers' processes)


async def _run_worker(settings: Settings, health: Health, loaded: LoadedTools) -> None:
    client = await connect(settings, runtime=metrics_runtime(settings.metrics_address))  # ConfigError if unreachable
    await ensure_search_attributes(client)
    worker = build_worker(client, settings, loaded.registry)
    model_workers = build_llm_workers(client, settings, loaded.registry)
    stop = asyncio.Event()
    trim = asyncio.create_task(trimming(settings.memory_trim_seconds))  # RSS follows what is held (service/memory.py)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with contextlib.AsyncExitStack() as running:
            for model_worker in model_workers:
                await running.enter_async_context(model_worker)
            await running.enter_async_context(worker)
            health.serving(lambda: worker.is_running and all(w.is_running for w in model_workers))
            for provider, rate in settings.llm_rate_limits:
                log.info(
                    "model calls to %s on task queue %r, at most %g/s",
                    provider,
                    settings.llm_task_queue(provider),
                    rate,
                )
            log.info(
                "worker polling task queue %r on %s%s (pid %d)",
                settings.task_queue,
                client.service_client.config.target_host,
                _version_note(settings),
                os.getpid(),
            )
            if settings.metrics_address:
                log.info("metrics on http://%s/metrics", settings.metrics_address)
            await stop.wait()
            health.stopping()
            log.info("shutting down: waiting up to %ss for in-flight activities", settings.graceful_shutdown_seconds)
    finally:
        trim.cancel()
        shutdown_tracing()
    log.info("worker stopped")


def _version_note(settings: Settings) -> str:
    deployment = settings.deployment
    if deployment.name is None:
        return ", unversioned"
    return f", deployment {deployment.name!r} build {deployment.build_id!r}"


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code (2 and one line on a configuration or connection error)."""
    return run_command("worker", _main, argv)


def _main(argv: list[str]) -> int:
    settings = Settings.from_env()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(settings))
    return 0


def cli() -> None:
    """The `durable-agents-worker` command."""
    exit_now(main())


if __name__ == "__main__":
    cli()
