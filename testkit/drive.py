"""Following one run to its end, deciding the approvals it asks for, and what the test sees of it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.service import RPCError

from testkit.tap import ToolCallRecord

Decide = bool | Callable[[dict[str, Any]], bool] | None
"""How the kit answers an approval request: True approve, False reject, a function of the pending request
(`request_id`, `summary`, `proposal` ...), or None: never answer (on the time-skipping server the request then
times out in milliseconds)."""
APPROVER = "tester"
POLL_SECONDS = 0.05


@dataclass
class RunReport:
    """One finished run as a test asserts on it."""

    workflow_id: str
    result: dict[str, Any] = field(default_factory=dict)
    """The workflow's result (`status`, `output`, `usage`, `steps`, `trace_id`); empty when the run failed."""
    failure: str | None = None
    """Why the workflow failed (bad input, an unrecoverable error), else None."""
    approvals: list[dict[str, Any]] = field(default_factory=list)
    """Each approval request the run made, as the `status` query showed it, with `approved` added."""
    tool_calls: list[ToolCallRecord] = field(default_factory=list)
    divergences: list[str] = field(default_factory=list)
    """Tool calls that differed from the recording this run was given (cassette replay, evals)."""

    @property
    def status(self) -> str:
        """The result's status, or `failed` when the workflow failed."""
        return str(self.result.get("status", "failed"))

    @property
    def output(self) -> Any:
        """The final text or structured output."""
        return self.result.get("output")

    @property
    def cost_usd(self) -> float:
        """What the run spent, in US dollars."""
        return float(self.result.get("usage", {}).get("cost_usd", 0.0))

    @property
    def tool_names(self) -> list[str]:
        """The tools called, in order."""
        return [c.tool for c in self.tool_calls]


async def drive(handle: WorkflowHandle[Any, Any], approve: Decide, *, time_skipping: bool) -> RunReport:
    """Wait for the run's end, deciding each approval request it makes as `approve` says."""
    report = RunReport(workflow_id=handle.id)
    if approve is not None:
        await _decide_until_closed(handle, approve, report)
    try:
        report.result = await handle.result()
    except WorkflowFailureError as exc:
        report.failure = str(exc.cause or exc)
    return report


async def _decide_until_closed(handle: WorkflowHandle[Any, Any], approve: Decide, report: RunReport) -> None:
    # Polling, not awaiting the result: on the time-skipping server awaiting the result lets time run, and an
    # approval request would time out before the kit could answer it.
    decided: set[str] = set()
    while (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
        try:
            pending = (await handle.query("status")).get("pending_approvals") or []
        except RPCError:  # the first workflow task has not run yet
            pending = []
        for request in pending:
            if request["request_id"] in decided:
                continue
            decided.add(request["request_id"])
            approved = approve(request) if callable(approve) else bool(approve)
            report.approvals.append({**request, "approved": approved})
            update = {"request_id": request["request_id"], "approved": approved, "approver": APPROVER}
            await handle.execute_update("decide", update)
        await asyncio.sleep(POLL_SECONDS)
