"""Helpers of the spend-limit tests: a worker with limits, the ledgers' figures, a limits file."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio.client import Client, WorkflowHandle

from config.settings import Settings
from models.spend_limits import LedgerView, SpendLimits, ledger_id


async def run_loop(client: Client, settings: Settings, prefix: str, **run_input: Any) -> dict[str, Any]:
    """One `AgentLoopWorkflow` run with `run_input` on the worker's queue, awaited: its result."""
    from tests.conftest import workflow_id

    return await client.execute_workflow(
        "AgentLoopWorkflow", run_input, id=workflow_id(prefix), task_queue=settings.task_queue
    )


def customer() -> str:
    """A customer id of this test alone: ledgers are per customer and outlive a test."""
    return f"C{uuid.uuid4().hex[:10]}"


def limits_toml(customer_id: str, window: str = "day", on_limit: str = "fail", **cap: float) -> str:
    """A SPEND_LIMITS file capping `customer_id` only (`*` would share a ledger with every other test)."""
    units = ", ".join(f"{unit} = {value}" for unit, value in cap.items())
    return f'[limits."{customer_id}"]\n{window} = {{ {units} }}\non_limit = "{on_limit}"\n'


def with_limits(settings: Settings, text: str, tmp_path: Path) -> Settings:
    """`settings` with SPEND_LIMITS read from `text` (written beside the test's other files)."""
    path = tmp_path / "limits.toml"
    path.write_text(text)
    import tomllib

    limits = SpendLimits.model_validate(tomllib.loads(text))
    return dataclasses.replace(settings, spend_limits_file=str(path), spend_limits=limits)


@asynccontextmanager
async def limited_worker(client: Client, settings: Settings) -> AsyncIterator[Settings]:
    """An in-process worker that reserves and settles every model call against `settings.spend_limits`."""
    from worker import build_worker

    async with build_worker(client, settings):
        yield settings


def ledger_handle(client: Client, settings: Settings, customer_id: str, window: str = "day") -> WorkflowHandle:
    """The customer's ledger workflow of `window` for the current period."""
    assert settings.spend_limits is not None
    [ref] = [r for r in settings.spend_limits.applicable(customer_id) if r.window == window]
    return client.get_workflow_handle(ledger_id(ref, datetime.now(UTC)))


async def ledger(client: Client, settings: Settings, customer_id: str, window: str = "day") -> LedgerView:
    """The customer's ledger of `window` for the current period."""
    handle = ledger_handle(client, settings, customer_id, window)
    view: LedgerView = await handle.query("state", result_type=LedgerView)
    return view


def tokens_of(result: dict[str, Any]) -> int:
    """Tokens a run's result says it spent."""
    usage = result["usage"]
    return int(usage["input_tokens"]) + int(usage["output_tokens"])
