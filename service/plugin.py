"""AgentServicePlugin: what every client, worker and replayer of the product shares, configured in one place.

Clients get the data converter (pydantic JSON + the payload codec) and tracing; workers and replayers
get the three workflows, the sandbox passthrough, the tracing interceptor and RunFailed as a workflow
failure; workers also get every activity (service/activities.py), built from the plugin's settings.

What only workers and replayers need (the workflows, the activities and the model SDKs they import, the
sandbox) is imported when one is configured: a client alone (`python -m progress follow`, the gateway, a
starter) connects in about a second instead of after the whole worker has loaded (issue 30: 6 s of silence).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING

from temporalio.client import Client
from temporalio.converter import DataConverter
from temporalio.plugin import SimplePlugin

from config.settings import Settings
from models.errors import RunFailed
from payloads.converter import data_converter
from telemetry.tracing import setup_tracing, temporal_interceptor

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from temporalio.worker import ReplayerConfig, Worker, WorkerConfig, WorkflowRunner

    from tools.registry import Registry

SANDBOX_PASSTHROUGH = (
    "pydantic",  # the converter validates with pydantic outside the sandbox: workflows must share its classes
    "models",  # the data converter must decode into the very contract classes the workflows use
    "archives.models",  # the archive_run contract, for the same reason as models
    "opentelemetry",  # one tracer provider inside and outside the sandbox (as OpenTelemetryPlugin passes it)
    # The whole `workflows` package, the workflow definitions included: imported once, shared by every run. Each run's
    # sandbox then executes no module at all (`@workflow.defn` is processed once, not per run): a new sandbox was
    # 17% of replaying the checked-in histories and is now 1% (bench/sandbox_start.py), which is what every eviction
    # from the workflow cache paid at load. The sandbox no longer guards these modules' code (its builtins and
    # import restrictions still apply at run time), so tests/test_workflow_layering.py does, statically:
    # deterministic imports only, no clock read but `workflow.now()`, no module-level value changed, no mutable
    # class-level value and no class attribute set (a run's state lives on its instance). Replay tests prove the rest.
    "workflows",
)


def workflows(versioned: bool = False) -> list[type]:
    """The product's three agent workflows and the spend-limit ledger (imported on first use): as declared, each with its versioning behavior
    or (`versioned=False`, for unversioned workers) the same code without one (workflows/unversioned/)."""
    if not versioned:
        from workflows.unversioned.agent_loop import UnversionedAgentLoopWorkflow
        from workflows.unversioned.black_box import UnversionedBlackBoxAgentWorkflow
        from workflows.unversioned.hybrid import UnversionedHybridAgentWorkflow

        agents: list[type] = [
            UnversionedAgentLoopWorkflow,
            UnversionedBlackBoxAgentWorkflow,
            UnversionedHybridAgentWorkflow,
        ]
    else:
        from workflows.agent_loop import AgentLoopWorkflow
        from workflows.black_box import BlackBoxAgentWorkflow
        from workflows.hybrid import HybridAgentWorkflow

        agents = [AgentLoopWorkflow, BlackBoxAgentWorkflow, HybridAgentWorkflow]
    return [*agents, ledger_workflow(versioned)]


def ledger_workflow(versioned: bool = False) -> type:
    """The spend-limit ledger's workflow class: the main worker registers it (for ledgers started on its queue
    before they had their own) and so does the ledgers' worker (service/ledger_worker.py)."""
    from workflows.spend_ledger import SpendLedgerWorkflow, VersionedSpendLedgerWorkflow

    return VersionedSpendLedgerWorkflow if versioned else SpendLedgerWorkflow


def _sandbox(runner: WorkflowRunner | None) -> WorkflowRunner:
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

    if runner is None:
        raise ValueError("AgentServicePlugin needs the worker's workflow runner")
    if isinstance(runner, SandboxedWorkflowRunner):
        return dataclasses.replace(
            runner, restrictions=runner.restrictions.with_passthrough_modules(*SANDBOX_PASSTHROUGH)
        )
    return runner


class AgentServicePlugin(SimplePlugin):
    """The product's wiring for clients, workers and replayers, from one `Settings`."""

    def __init__(self, settings: Settings, registry: Registry | None = None) -> None:
        self.settings = settings
        self.registry = registry
        """The worker's loaded tools and agents (`tools.loader.load_registry`); None: the built-ins."""
        setup_tracing(settings.langfuse, settings.secrets, settings.service_name)
        super().__init__(
            "durable_agents.AgentServicePlugin",
            data_converter=self._data_converter,
            interceptors=[temporal_interceptor()],
            workflows=self._with_workflows,
            workflow_runner=_sandbox,
            workflow_failure_exception_types=[RunFailed],
        )

    def _with_workflows(self, existing: Sequence[type] | None) -> list[type]:
        return [*(existing or []), *workflows(self.settings.deployment.versioned)]

    def _data_converter(self, existing: DataConverter | None) -> DataConverter:
        return data_converter(self.settings)  # built when a client or replayer needs it, never for a worker

    def configure_worker(self, config: WorkerConfig) -> WorkerConfig:
        """Workflows, interceptor and sandbox as SimplePlugin does, then the activities built from the settings.

        An unversioned worker names its build with the traceable default (`config.deployment.read_deployment`)
        instead of the SDK's hash.
        """
        from service.activities import build_activities
        from service.sandbox import context_free

        config = super().configure_worker(config)
        if not (config.get("deployment_config") or config.get("build_id")):
            # The SDK marks `build_id` deprecated in favor of `deployment_config`, which joins a Worker Deployment:
            # an unversioned worker can name its build only this way.
            config["build_id"] = self.settings.deployment.build_id
        config["workflow_runner"] = context_free(config["workflow_runner"], config["client"].data_converter)
        config["activities"] = [
            *config.get("activities", []),
            *build_activities(self.settings, config["client"], self.registry),
        ]
        return config

    async def run_worker(self, worker: Worker, next: Callable[[Worker], Awaitable[None]]) -> None:
        """Run `worker`, and beside it (with SPEND_LIMITS) the spend ledgers' own worker (service/ledger_worker.py)."""
        from activities.spend_lease import release_all
        from service.ledger_worker import ledgers_beside

        async with ledgers_beside(worker, self.settings):
            try:
                await super().run_worker(worker, next)
            finally:  # the last reports, and this worker's allowances given back, while the ledgers still run
                await release_all()

    def configure_replayer(self, config: ReplayerConfig) -> ReplayerConfig:
        """As SimplePlugin does, then the sandbox without its context lookups (service/sandbox.py), as workers run,
        and the traceable build id (the SDK would hash every loaded module for one)."""
        from service.sandbox import context_free

        config = super().configure_replayer(config)
        config["build_id"] = config.get("build_id") or self.settings.deployment.build_id
        config["workflow_runner"] = context_free(config["workflow_runner"], config["data_converter"])
        return config


def worker_client(client: Client) -> Client:
    """`client` without its AgentServicePlugin, so a worker given its own plugin gets the plugin's part once.

    The connection, namespace, data converter (its codec) and tracing interceptor the client's plugin
    installed stay: a worker reads and writes payloads exactly as the client that made it does.
    """
    config = client.config(active_config=True)
    plugins = [p for p in config["plugins"] if not isinstance(p, AgentServicePlugin)]
    if len(plugins) == len(config["plugins"]):
        return client
    config["plugins"] = plugins
    return Client(**config)
