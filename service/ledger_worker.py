"""The spend ledgers' own worker: `SpendLedgerWorkflow` runs on a task queue of its own (`<queue>-spend-ledgers`),
polled by a second `Worker` that `AgentServicePlugin.run_worker` runs beside the main one whenever SPEND_LIMITS is
set, and stops after it (the main worker's last model calls still settle).

Why a worker of its own. Every model call reaches its ledger by an update, so a ledger takes bursts of updates:
fifty runs starting at once send it fifty. On the main worker its workflow tasks queued behind the agent runs'
for the same slots, and its sticky queue had the main worker's 0.5 s schedule-to-start timeout (WORKER_STICKY_TIMEOUT_MS,
short so a killed worker's runs move on quickly). A loaded worker missed that window, the server moved the ledger's
update task to the normal queue, the late completion was refused ("Workflow task not found"), and while Core
evicted the run two of its tasks were buffered. Core then dropped one ("Extra buffered run should not have
produced an activation", an error log of temporalio 1.35's Core), and the ledger never got another task: every
model call of every run of its customer waited until its attempts ran out. Seen in about one in five runs of the
fifty-run race on two busy cores (tests/test_spend_limits.py), caught with the server's history and the worker's log.

Here the ledgers have slots and pollers of their own, a cache that holds every live one (a ledger is small, and
LRU evicts only idle ones, which have no tasks buffered) and the SDK's default 10 s sticky timeout: a ledger's
tasks wait that long for a worker that died, which delays its customers' model calls by as much once per crash.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from datetime import timedelta
from typing import TYPE_CHECKING

from config.settings import Settings

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from temporalio.worker import Worker

LEDGERS_CACHED = 1000
"""Ledgers kept in memory (the SDK's default cache size): one per customer and window with calls this period."""
LEDGER_STICKY_TIMEOUT = timedelta(seconds=10)
"""How long a ledger's next task waits for the worker that has it cached (the SDK's default)."""


def ledger_worker(main: Worker, settings: Settings) -> Worker:
    """A worker for the spend ledgers, configured as `main` (client, sandbox, interceptors, build or deployment)."""
    from temporalio.worker import Worker

    from service.plugin import ledger_workflow

    config = main.config(active_config=True)
    return Worker(
        main.client,
        task_queue=settings.spend_ledger_task_queue,
        workflows=[ledger_workflow(settings.deployment.versioned)],
        workflow_runner=config["workflow_runner"],
        interceptors=config.get("interceptors", []),
        max_cached_workflows=LEDGERS_CACHED,
        sticky_queue_schedule_to_start_timeout=LEDGER_STICKY_TIMEOUT,
        graceful_shutdown_timeout=timedelta(seconds=settings.graceful_shutdown_seconds),
        identity=settings.identity,
        build_id=config.get("build_id"),
        deployment_config=config.get("deployment_config"),
    )


@asynccontextmanager
async def ledgers_beside(main: Worker, settings: Settings) -> AsyncIterator[None]:
    """Run the ledger worker while `main` runs (nothing when SPEND_LIMITS is not set)."""
    if settings.spend_limits is None or main.task_queue != settings.task_queue:
        yield
        return
    async with ledger_worker(main, settings):
        yield
