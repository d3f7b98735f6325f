"""The life of every agent run, written once: prelude, the workflow's own part, epilogue; plus approvals and status.

A workflow class says only what is particular to it (`_execute`, and which agents its input names);
`AgentWorkflow._lifecycle` does the rest in the same order for all three, so their histories keep
the same shape: search attributes, history limits, ledger, ..., final status, archive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Generic, Literal, TypeVar

from temporalio import workflow

from workflows import calls
from workflows.visibility import current_trace_id, publish_search_attributes, tag_trace

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ValidationError

    from models.approval import ApprovalRequest, Decision
    from models.archive import ArchiveRequest
    from models.conversation import Conversation
    from models.errors import InvalidInput, RunFailed
    from models.history import HistoryLimits
    from models.run import AgentRunInput, AgentRunResult, ApprovalPolicy, RunStatus, Usage
    from models.status import StatusView
    from telemetry.metrics import record_approval, record_guardrail_rejection, record_run_end
    from telemetry.tracing import tracer
    from tools.catalog import REGISTRY
    from workflows.approvals import ApprovalBook, proposal_markdown
    from workflows.carry import RunCarry
    from workflows.ledger import RunLedger

I = TypeVar("I", bound=AgentRunInput)  # noqa: E741  (the workflow's input model)
M = TypeVar("M", bound=BaseModel)
FINAL_STATES = {
    RunStatus.COMPLETED,
    RunStatus.REJECTED,
    RunStatus.APPROVAL_TIMED_OUT,
    RunStatus.BUDGET_EXCEEDED,
    RunStatus.FAILED,
}

BOUNDED_HISTORY_PATCH = "bounded-history"
"""Runs recorded before offload and continue-as-new have no marker for this and replay as they ran."""
ARCHIVE_PATCH = "archive-on-completion"
"""Runs recorded before archives existed replay without the `archive_run` local activity."""


def parse_input(raw: Any, model: type[M]) -> M:
    """Validate a workflow's raw JSON input; every problem is named by its field path."""
    if raw is None:
        raise InvalidInput('an input object is required, e.g. {"prompt": "..."}')
    if not isinstance(raw, dict):
        raise InvalidInput(f"expected a JSON object, got {type(raw).__name__}")
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = ".".join(map(str, err["loc"])) or "input"
            msg = err["msg"].replace("Extra inputs are not permitted", "unknown field")
            problems.append(f"{where}: {msg}")
        raise InvalidInput("; ".join(problems)) from None


@dataclass
class RunStart(Generic[I]):
    """What the prelude established: the checked input, the run's trace, its limits, what an earlier generation carried."""

    raw: Any
    """The input as given; continue-as-new hands it to the next generation unchanged."""
    request: I
    trace_id: str
    limits: HistoryLimits
    resumed: RunCarry | None

    @property
    def generation(self) -> int:
        """1 for a run's first generation, then 2, 3, ... after each continue-as-new."""
        return self.resumed.generation if self.resumed else 1


@dataclass
class RunEnd:
    """How the workflow's own part ended, and what the archive records of it."""

    status: RunStatus
    output: Any
    final_answer: Any = None
    plan: Any = None
    specialist_results: Any = None
    conversations: dict[str, Conversation] = field(default_factory=dict)


class AgentWorkflow(Generic[I]):
    """Approval handlers, the `status` query and the run's lifecycle, shared by all three agent workflows."""

    PATTERN = "?"
    BOUNDED_HISTORY = True
    """Whether the run fetches history limits (offload, continue-as-new); pattern A keeps nothing to offload."""

    def __init__(self) -> None:
        self._state = RunStatus.RUNNING
        self._book = ApprovalBook()
        self._ledger: RunLedger | None = None
        self._agent: str | None = None
        self._stage: str | None = None
        self._waiting_for: str | None = None
        self._ended = False

    # --- the lifecycle -------------------------------------------------------------------------

    async def _lifecycle(self, raw: Any, carry: Any, model: type[I]) -> AgentRunResult:
        """Prelude, the workflow's `_execute`, epilogue; a `RunFailed` marks the run failed and fails it."""
        start = await self._begin(raw, carry, model)
        try:
            end = await self._execute(start)
        except RunFailed:
            self._set_state(RunStatus.FAILED)
            raise
        return await self._finish(start, end)

    async def _execute(self, start: RunStart[I]) -> RunEnd:
        """What this workflow does between prelude and epilogue."""
        raise NotImplementedError

    def _agents_named(self, request: I) -> list[tuple[str, str]]:
        """(field path, agent name) of every agent the input names; each must be known."""
        return [("agent", request.agent)]

    def _agent_label(self, request: I) -> str:
        """The `AgentName` search attribute and the agent the status query shows."""
        return request.agent

    async def _begin(self, raw: Any, carry: Any, model: type[I]) -> RunStart[I]:
        trace_id = current_trace_id()
        request = self._accept_input(raw, model)
        self._agent = self._agent_label(request)
        publish_search_attributes(agent=self._agent, pattern=self.PATTERN, customer_id=request.customer_id)
        self._set_state(RunStatus.RUNNING)
        resumed = self._resume(carry)
        if resumed is not None:
            return RunStart(raw, request, resumed.trace_id, resumed.limits, resumed)
        limits = await self._history_limits() if self.BOUNDED_HISTORY else HistoryLimits.legacy()
        self._ledger = RunLedger(budget=request.budget, started_at=workflow.now())
        return RunStart(raw, request, trace_id, limits, None)

    def _accept_input(self, raw: Any, model: type[I]) -> I:
        """Validate the input and every agent it names; a bad one fails the run at once."""
        try:
            request = parse_input(raw, model)
            for where, name in self._agents_named(request):
                if name not in REGISTRY.agents:
                    known = ", ".join(sorted(REGISTRY.agents))
                    raise InvalidInput(f"{where}: unknown agent {name!r} (known: {known})")
        except Exception:
            self._set_state(RunStatus.FAILED)
            raise
        tag_trace(user_id=request.customer_id, session_id=request.session_id or workflow.info().workflow_id)
        return request

    async def _history_limits(self) -> HistoryLimits:
        """The worker's history limits, recorded in history by a local activity.

        Workflows may not read the environment, and limits in the workflow input would let each caller
        pick them; a marker costs a few milliseconds once per run, and a replay reads the same answer.
        """
        if not workflow.patched(BOUNDED_HISTORY_PATCH):
            return HistoryLimits.legacy()
        return await calls.history_limits()

    def _resume(self, carry: Any) -> RunCarry | None:
        """Restore totals and approvals handed over by the previous generation (None on a run's first)."""
        if carry is None:
            return None
        resumed = parse_input(carry, RunCarry)
        self._ledger = resumed.ledger
        self._book = resumed.approvals
        return resumed

    def _may_continue_as_new(self) -> bool:
        """Only between steps with nobody's decision outstanding and no handler mid-way."""
        return not self._book.pending() and workflow.all_handlers_finished()

    def _continue_as_new(self, raw: Any, carry: RunCarry) -> None:
        """End this generation; the next starts with the same input and what `carry` holds."""
        workflow.logger.info("continuing as new: generation %d, step %d", carry.generation, carry.ledger.steps)
        workflow.continue_as_new(args=[raw, carry])

    async def _finish(self, start: RunStart[I], end: RunEnd) -> AgentRunResult:
        """Final status, the result, and the run's archive."""
        self._set_state(end.status)
        assert self._ledger is not None
        result = AgentRunResult(
            status=end.status,
            output=end.output,
            usage=self._ledger.usage,
            steps=self._ledger.steps,
            trace_id=start.trace_id,
        )
        await self._archive(result, end, start.request.customer_id)
        return result

    async def _archive(self, result: AgentRunResult, end: RunEnd, customer_id: str | None) -> None:
        """Archive the finished run; a failed archive is logged and the run still returns its result.

        The result is the product's contract and the work it reports is done; an archive is a record of
        it. Failing a completed run because a bucket was unreachable would tell the caller the work
        failed, so after its retries the failure stays visible in the history and the worker log instead.
        """
        if not workflow.patched(ARCHIVE_PATCH):
            return
        info = workflow.info()
        request = ArchiveRequest(
            workflow_id=info.workflow_id,
            first_run_id=info.first_execution_run_id,
            run_id=info.run_id,
            workflow_type=info.workflow_type,
            status=result.status.value,
            output=result.output,
            usage=result.usage.model_dump(mode="json"),
            steps=result.steps,
            trace_id=result.trace_id,
            annotations={
                "plan": end.plan,
                "specialist_results": end.specialist_results,
                "final_answer": end.final_answer,
                "customer_id": customer_id,
                "status": result.status.value,
            },
            conversations=end.conversations,
        )
        try:
            await calls.archive_run(request)
        except calls.ArchiveFailed as exc:
            workflow.logger.warning("archive of run %s failed: %s", info.workflow_id, exc)

    def _set_state(self, state: RunStatus) -> None:
        self._state = state
        publish_search_attributes(status=state.value)
        if state in FINAL_STATES and not self._ended:
            self._ended = True
            self._record_end(state)

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

    # --- approvals and status ------------------------------------------------------------------

    @workflow.signal(
        name="approve",
        description='Approve a pending request: {"approver": "alice", "comment": "ok", "request_id": "optional, oldest pending if absent"}',
    )
    def approve(self, payload: Any) -> None:
        """Signal `approve`; a bad payload or unlisted approver is recorded and ignored."""
        self._on_signal("approve", payload)

    @workflow.signal(
        name="reject",
        description='Reject a pending request: {"approver": "alice", "reason": "too risky", "request_id": "optional"}',
    )
    def reject(self, payload: Any) -> None:
        """Signal `reject`; a bad payload or unlisted approver is recorded and ignored."""
        self._on_signal("reject", payload)

    def _on_signal(self, name: Literal["approve", "reject"], payload: Any) -> None:
        outcome = self._book.apply_signal(name, payload, workflow.now())
        if isinstance(outcome, Decision):
            workflow.logger.info("%s: %s decided by %s", name, outcome.request_id, outcome.approver)
        else:
            workflow.logger.warning("signal %s ignored: %s", name, outcome.reason)

    @workflow.update(
        name="decide",
        description='Decide a request, refused with a reason if wrong: {"request_id": "req-1", "approved": true, "approver": "alice", "comment": ""}',
    )
    def decide(self, payload: Any) -> Decision:
        """Update `decide`: returns the recorded decision."""
        return self._book.apply_update(self._book.check_update(payload), workflow.now())

    @decide.validator
    def _validate_decide(self, payload: Any) -> None:
        self._book.check_update(payload)

    @workflow.query(name="status", description="State, stage, step, usage so far and pending approvals.")
    def status(self) -> StatusView:
        """Query `status`."""
        ledger = self._ledger
        return StatusView(
            state=self._state,
            agent=self._agent,
            pattern=self.PATTERN,
            stage=self._stage,
            waiting_for=self._waiting_for,
            step=ledger.steps if ledger else 0,
            usage=ledger.usage if ledger else Usage(),
            pending_approvals=self._book.pending_views(),
            ignored_decisions=self._book.ignored,
        )

    async def _ask_approval(
        self, *, kind: Literal["tool_call", "plan"], summary: str, proposal: dict[str, Any], policy: ApprovalPolicy
    ) -> Decision:
        """Open a request and wait for a decision on a durable timer: no worker slot or thread is held."""
        request = self._book.open(
            kind=kind,
            summary=summary,
            proposal=proposal,
            approvers=policy.approvers,
            now=workflow.now(),
            timeout=timedelta(seconds=policy.timeout_seconds),
        )
        self._waiting_for = f"approval of {request.request_id}: {summary}"
        self._set_state(RunStatus.WAITING_FOR_APPROVAL)
        workflow.set_current_details(proposal_markdown(workflow.info().workflow_id, request))
        waiting_since = workflow.now()
        # A span in the run's trace for the wait (the signal's own span belongs to whoever sent it).
        attributes = {"approval.kind": kind, "approval.summary": summary[:500]}
        with tracer().start_as_current_span(f"approval {request.request_id}", attributes=attributes) as span:
            decision = await self._await_decision(request, policy.timeout_seconds)
            outcome = "timeout" if decision.via == "timeout" else ("approved" if decision.approved else "rejected")
            span.set_attributes({"approval.outcome": outcome, "approval.approver": decision.approver or ""})
        waited = (workflow.now() - waiting_since).total_seconds()
        if self._ledger is not None:
            self._ledger.waited_seconds += waited
        record_approval(workflow.metric_meter(), kind=kind, outcome=outcome, waited_seconds=waited)
        verdict = "approved" if decision.approved else "rejected"
        workflow.set_current_details(f"{request.request_id} {verdict} by {decision.approver}: {summary}")
        self._waiting_for = None
        self._set_state(RunStatus.RUNNING)
        return decision

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
