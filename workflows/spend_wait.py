"""A run that a spend limit across runs refused waits for the limit's window to reset (`on_limit = "wait"`).

The wait is a durable timer: no worker slot, no thread. The run's `status` query shows it (workflows/handlers.py).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Protocol, cast

from temporalio import workflow

from workflows.progress import progress_of_run

with workflow.unsafe.imports_passed_through():
    from models.errors import SpendLimitReached
    from models.spend_limits import SpendNote

RESET_MARGIN = timedelta(seconds=1)
"""Waited beyond a window's reset, so the worker's clock, not only the run's, has passed it."""


async def wait_for_reset(exc: SpendLimitReached) -> None:
    """Wait on a durable timer (no worker slot, no thread) until the refusing limit's window resets.

    The wait is shown in the `status` query (`waiting_for`, `spend_limit.waiting_until`), the UI's current details
    and the progress stream (`spend_limit_wait`).
    """
    until = workflow.now() + timedelta(seconds=exc.resets_in_seconds) + RESET_MARGIN
    waiting = f"spend limit {exc.limit} to reset at {until.isoformat()}"
    run = run_status()
    if run is not None:
        run.show_spend_limit(SpendNote(limit=exc.limit, remaining=exc.remaining, waiting_until=until))
        run.show_waiting(waiting)
    progress_of_run().publish("spend_limit_wait", limit=exc.limit, resets_at=until.isoformat())
    workflow.set_current_details(f"**waiting** for {waiting}")
    await workflow.sleep(until - workflow.now())
    if run is not None:
        run.show_spend_limit(None)
        run.show_waiting(None)


class RunStatusView(Protocol):
    """What a call shows in its run's `status` query (workflows/handlers.py `RunHandlers`)."""

    def show_spend_limit(self, note: SpendNote | None) -> None:
        """The tightest spend limit that applies and its remainder (None: none)."""

    def show_waiting(self, waiting_for: str | None) -> None:
        """What the run waits for (None: nothing)."""


def run_status() -> RunStatusView | None:
    instance = workflow.instance()
    return cast(RunStatusView, instance) if hasattr(instance, "show_spend_limit") else None
