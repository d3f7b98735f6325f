"""Each limit's spend, reservations and remainder, read from its ledger workflow (workflows/spend_ledger.py).

The ledgers are found by visibility (`WorkflowType="SpendLedgerWorkflow"`, open ones: the current period's and
those lingering after theirs) and each is asked its `state` query; a ledger's id names its scope, window and period.
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio.client import Client

from models.spend_limits import LEDGER_PREFIX, LedgerView, SpendLimits

LISTED = 'WorkflowType="SpendLedgerWorkflow" AND ExecutionStatus="Running"'
MAX_LEDGERS = 1000


async def usage(client: Client, limits: SpendLimits | None, scopes: set[str] | None = None) -> list[dict[str, Any]]:
    """One row per open ledger (of `scopes` only, when given): scope, window, period, spend, reserved, cap, remaining."""
    ids = []
    async for execution in client.list_workflows(LISTED, limit=MAX_LEDGERS):
        parts = execution.id.split("/")
        if len(parts) == 4 and parts[0] == LEDGER_PREFIX and (scopes is None or parts[1] in scopes):
            ids.append((execution.id, parts[1], parts[2], parts[3]))
    views = await asyncio.gather(*(_state(client, wid) for wid, *_ in ids))
    rows = []
    for (wid, scope, window, period), view in zip(ids, views, strict=True):
        if view is None:
            continue
        table = None if limits is None else limits.limits.get("*") if scope == "*" else limits.table_of(scope)
        rows.append(
            {
                "limit": f"{'all customers' if scope == '*' else 'customer ' + scope} {window}",
                "scope": scope,
                "window": window,
                "period": period,
                "spent": {"tokens": view.spent_tokens, "usd": view.spent_usd},
                "reserved": view.held(),
                "leased": {"tokens": view.leased_tokens, "usd": view.leased_usd},
                "cap": view.cap.model_dump() if view.cap else None,
                "remaining": view.remaining(),
                "resets_at": view.resets_at.isoformat() if view.resets_at else None,
                "on_limit": table.on_limit if table else None,
                "workflow_id": wid,
            }
        )
    return sorted(rows, key=lambda r: (r["scope"], r["window"], r["period"]))


async def _state(client: Client, workflow_id: str) -> LedgerView | None:
    try:
        view: LedgerView = await client.get_workflow_handle(workflow_id).query("state", result_type=LedgerView)
    except Exception:  # closed between listing and asking, or no worker polls its queue: left out, not fatal
        return None
    return view


def line(row: dict[str, Any]) -> str:
    """One row as the command prints it."""
    units = [u for u in ("tokens", "usd") if row["cap"] and row["cap"].get(u) is not None]
    figures = ", ".join(
        f"{u}: spent {row['spent'][u]} reserved {row['reserved'][u]} remaining {row['remaining'][u]} of {row['cap'][u]}"
        for u in units
    )
    return f"{row['limit']} {row['period']}: {figures} (resets {row['resets_at']})"
