"""What every agent run answers from outside, and the state it answers from.

Signals `approve`/`reject`, the validated update `decide`, the query `status`; the durable wait for a
person's decision; the run's state as the status query and the `AgentStatus` search attribute show it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal

from temporalio import workflow

from workflows import calls, patches
from workflows.progress import RunProgress
from workflows.visibility import observation_io, publish_search_attributes

with workflow.unsafe.imports_passed_through():
    from models.approval import PENDING_MEMO, ApprovalRequest, Decision, memo_entry
    from models.approval_notice import ApprovalNotice
    from models.run import ApprovalPolicy, RunStatus, Usage
    from models.spend_limits import SpendNote
    from models.status import StatusView
    from telemetry.metrics import record_approval, record_guardrail_rejection, record_run_end
    from telemetry.tracing import tracer
    from workflows.approval_text import proposal_markdown
    from workflows.approvals import ApprovalBook
    from workflows.ledger import RunLedger

APPROVAL_GATEWAY_PATCH = "approval-gateway"
"""Runs recorded before the gateway neither honoured `approvers: ["*"]` nor announced requests (notify_approval)."""
APPROVALS_MEMO_PATCH = "approvals-in-memo"
"""Runs recorded before it kept no list of open requests in their memo (the gateway's listing reads it)."""
ONE_PENDING_SIGNAL_PATCH = "signal-needs-one-pending"
"""Runs recorded before it let a signal without `request_id` decide the oldest of several pending requests."""
DECISIONS_WAIT_PATCH = "decisions-wait-for-their-request"
"""Runs recorded before it handled a decision at once, so one that arrived in the workflow task that opens its
request was ignored or applied depending on which ran first (`_until_decidable`)."""

FINAL_STATES = {
    RunStatus.COMPLETED,
    RunStatus.REJECTED,
    RunStatus.APPROVAL_TIMED_OUT,
    RunStatus.BUDGET_EXCEEDED,
    RunStatus.STOPPED,
    RunStatus.FAILED,
    RunStatus.CANCELLED,
}


class RunHandlers:
    """Approval handlers, the `status` query and the run's state, shared by all three agent workflows."""

    PATTERN = "?"

    def __init__(self) -> None:
        self._state = RunStatus.RUNNING
        self._book = ApprovalBook()
        self._ledger: RunLedger | None = None
        self._agent: str | None = None
        self._active: str | None = None
        """The agent holding the conversation after a handoff (None: the run's own)."""
        self._stage: str | None = None
        self._waiting_for: str | None = None
        self._spend_limit: SpendNote | None = None
        """Set by workflows/calls.py from each model call's answer (SPEND_LIMITS), through `show_spend_limit`."""
        self._ended = False
        self._progress = RunProgress.disabled()  # the run opens its stream first thing (AgentWorkflow._lifecycle)

    def show_spend_limit(self, note: SpendNote | None) -> None:
        """The run's tightest spend limit and its remainder, for `status` (None: none applies)."""
        self._spend_limit = note

    def show_waiting(self, waiting_for: str | None) -> None:
        """What the run waits for, for `status` (None: nothing)."""
        self._waiting_for = waiting_for

    def _set_state(self, state: RunStatus) -> None:
        self._state = state
        publish_search_attributes(status=state.value)
        if state in FINAL_STATES and not self._ended:
            self._ended = True
            self._record_end(state)
            self._progress.run_finished(state.value)

    def _record_end(self, state: RunStatus) -> None:
        """Per-run metrics; a run stopped by a ceiling also counts as a guardrail rejection."""
        meter = workflow.metric_meter()
        usage = self._ledger.usage if self._ledger else Usage()
        record_run_end(
            meter,
            workflow_type=workflow.info().workflow_type,
            agent=self._agent or "unknown",
            status=state.value,
            tokens=usage.total_tokens,
            cost_usd=usage.cost_usd,
            steps=self._ledger.steps if self._ledger else 0,
        )
        if state == RunStatus.BUDGET_EXCEEDED:
            record_guardrail_rejection(meter, reason="budget")

    @workflow.signal(
        name="approve",
        description='Approve a pending request: {"approver": "alice", "comment": "ok", "request_id": "req-1 (optional when exactly one is pending)"}',
    )
    async def approve(self, *payloads: Any) -> None:
        """Signal `approve`; a bad payload (none, `null`, several, not an object) or unlisted approver is recorded and ignored.

        Declared with `*payloads` so that no payload count can fail the workflow task: the SDK calls a
        handler with as many arguments as the signal carried, and skips type hints when they do not match.
        """
        await self._on_signal("approve", payloads)

    @workflow.signal(
        name="reject",
        description='Reject a pending request: {"approver": "alice", "reason": "too risky", "request_id": "optional"}',
    )
    async def reject(self, *payloads: Any) -> None:
        """Signal `reject`; a bad payload or unlisted approver is recorded and ignored (see `approve`)."""
        await self._on_signal("reject", payloads)

    async def _until_decidable(self, payloads: tuple[Any, ...]) -> None:
        """Wait, within this workflow task only, until the request a decision names (any, without an id) is open.

        A worker that answered the `status` query from a run it had taken ahead of its history can show a
        request before the workflow task that opens it is recorded; a decision sent then arrives in that same
        task, and on replay its handler runs before the code that opens the request, where on first execution
        it ran after. Waiting until the request is open, or the task is over (the next one has a later time),
        gives the decision the same outcome both ways.
        """
        if not patches.patched(DECISIONS_WAIT_PATCH):
            return
        named = payloads[0].get("request_id") if len(payloads) == 1 and isinstance(payloads[0], dict) else None
        received = workflow.now()
        await workflow.wait_condition(
            lambda: self._book.decidable(named if isinstance(named, str) else None) or workflow.now() > received
        )

    async def _on_signal(self, name: Literal["approve", "reject"], payloads: tuple[Any, ...]) -> None:
        await self._until_decidable(payloads)
        one_pending_only = patches.patched(ONE_PENDING_SIGNAL_PATCH)
        outcome = self._book.apply_signal_args(name, payloads, workflow.now(), one_pending_only=one_pending_only)
        if isinstance(outcome, Decision):
            workflow.logger.info("%s: %s decided by %s", name, outcome.request_id, outcome.approver)
        else:
            workflow.logger.warning("signal %s ignored: %s", name, outcome.reason)

    @workflow.update(
        name="decide",
        description='Decide a request, refused with a reason if wrong: {"request_id": "req-1", "approved": true, "approver": "alice", "comment": ""}',
    )
    async def decide(self, *payloads: Any) -> Decision:
        """Update `decide`: returns the recorded decision (the validator has refused any bad payload)."""
        await self._until_decidable(payloads)
        return self._book.apply_update(self._book.check_update_args(payloads), workflow.now())

    @decide.validator
    def _validate_decide(self, *payloads: Any) -> None:
        self._book.check_update_args(payloads)

    @workflow.query(name="status", description="State, stage, step, usage so far and pending approvals.")
    def status(self) -> StatusView:
        """Query `status`."""
        ledger = self._ledger
        return StatusView(
            state=self._state,
            agent=self._agent,
            active_agent=self._active or self._agent,
            pattern=self.PATTERN,
            stage=self._stage,
            waiting_for=self._waiting_for,
            spend_limit=self._spend_limit,
            step=ledger.steps if ledger else 0,
            usage=ledger.usage if ledger else Usage(),
            pending_approvals=self._book.pending_views(),
            ignored_decisions=self._book.ignored,
            decided_approvals=self._book.decided_views(),
        )

    async def _ask_approval(
        self, *, kind: Literal["tool_call", "plan"], summary: str, proposal: dict[str, Any], policy: ApprovalPolicy
    ) -> Decision:
        """Open a request and wait for a decision on a durable timer: no worker slot or thread is held."""
        gateway = patches.patched(APPROVAL_GATEWAY_PATCH)
        request = self._book.open(
            kind=kind,
            summary=summary,
            proposal=proposal,
            approvers=policy.approvers,
            now=workflow.now(),
            timeout=timedelta(seconds=policy.timeout_seconds),
            any_approver=gateway and "*" in policy.approvers,
        )
        self._progress.approval_requested(request.request_id, summary, kind, list(policy.approvers))
        listed = patches.patched(APPROVALS_MEMO_PATCH)
        if listed:
            self._list_pending()
        if gateway:
            self._announce(request)
        self._waiting_for = f"approval of {request.request_id}: {summary}"
        self._set_state(RunStatus.WAITING_FOR_APPROVAL)
        workflow.set_current_details(proposal_markdown(workflow.info().workflow_id, request))
        waiting_since = workflow.now()
        # A span in the run's trace for the wait (the signal's own span belongs to whoever sent it).
        attributes = {
            "approval.kind": kind,
            "approval.summary": summary[:500],
            **observation_io(input={"request_id": request.request_id, "kind": kind, "proposal": proposal}),
        }
        with tracer().start_as_current_span(f"approval {request.request_id}", attributes=attributes) as span:
            decision = await self._await_decision(request, policy.timeout_seconds)
            outcome = "timeout" if decision.via == "timeout" else ("approved" if decision.approved else "rejected")
            span.set_attributes(
                {
                    "approval.outcome": outcome,
                    "approval.approver": decision.approver or "",
                    **observation_io(
                        output={
                            "approved": decision.approved,
                            "approver": decision.approver,
                            "comment": decision.comment,
                            "via": decision.via,
                        }
                    ),
                }
            )
        waited = (workflow.now() - waiting_since).total_seconds()
        if self._ledger is not None:
            self._ledger.waited_seconds += waited
        record_approval(workflow.metric_meter(), kind=kind, outcome=outcome, waited_seconds=waited)
        self._progress.approval_decided(request.request_id, decision.approved, decision.approver, decision.via)
        if listed:
            self._list_pending()
        verdict = "approved" if decision.approved else "rejected"
        workflow.set_current_details(f"{request.request_id} {verdict} by {decision.approver}: {summary}")
        self._waiting_for = None
        self._set_state(RunStatus.RUNNING)
        return decision

    def _list_pending(self) -> None:
        """The open requests into the run's memo, where the gateway's listing finds them without a query."""
        workflow.upsert_memo({PENDING_MEMO: [memo_entry(p) for p in self._book.pending_views()]})

    def _announce(self, request: ApprovalRequest) -> None:
        """Tell the approval webhook (when the worker has one) that `request` waits, with signed links."""
        info = workflow.info()
        calls.notify_approval(
            ApprovalNotice(
                workflow_id=info.workflow_id,
                first_run_id=info.first_execution_run_id,
                request_id=request.request_id,
                kind=request.kind,
                summary=request.summary,
                proposal=request.proposal,
                approvers=request.approvers,
                expires_at=request.expires_at,
            )
        )

    async def _await_decision(self, request: ApprovalRequest, timeout_seconds: int) -> Decision:
        """A durable timer until a decision lands or the request expires (which then counts as a rejection)."""
        try:
            await workflow.wait_condition(
                lambda: request.decision is not None,
                timeout=timedelta(seconds=timeout_seconds),
                timeout_summary=f"approval {request.request_id} expires",
            )
        except TimeoutError:
            if request.decision is None:  # a decision may land in the same activation as the timer
                self._book.expire(request.request_id, workflow.now())
        assert request.decision is not None
        return request.decision
