"""The life of every agent run, written once: prelude, the workflow's own part, epilogue.

A workflow class says only what is particular to it (`_execute`; its input model says which agents it names);
`AgentWorkflow._lifecycle` does the rest in the same order for all three, so their histories keep
the same shape: search attributes, history limits, ledger, ..., final status, archive.
"""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import workflow
from temporalio.exceptions import is_cancelled_exception

from workflows import calls, patches, versioning
from workflows.active_agent import ActiveAgent
from workflows.handlers import RunHandlers
from workflows.progress import RunProgress
from workflows.run_parts import RunEnd, RunStart, parse_input
from workflows.screening import screen_inputs
from workflows.visibility import (
    current_trace_id,
    publish_search_attributes,
    set_trace_input,
    set_trace_output,
    tag_trace,
)

with workflow.unsafe.imports_passed_through():
    from archives.models import ArchiveRequest
    from models.agents import AgentRef, PinnedAgents, ResolveAgentsRequest
    from models.errors import RunFailed, SpendLimitReached
    from models.history import HistoryLimits
    from models.run import AgentRunInput, AgentRunResult, RunStatus
    from models.spend_limits import SpendNote
    from tools.catalog import REGISTRY
    from tools.pinning import pin, registry_of
    from workflows.carry import RunCarry
    from workflows.ledger import RunLedger

BOUNDED_HISTORY_PATCH = "bounded-history"
"""Runs recorded before offload and continue-as-new have no marker for this and replay as they ran."""
ARCHIVE_PATCH = "archive-on-completion"
"""Runs recorded before archives existed replay without the `archive_run` local activity."""
PIN_PATCH = "pinned-agents"
"""Runs recorded before pinning existed resolved every agent from the built-in registry, inside the workflow."""


class AgentWorkflow(RunHandlers):
    """The run's lifecycle, shared by all three agent workflows (handlers and state: `RunHandlers`).

    Not a `Generic` over the input model on purpose: the sandbox re-imports workflow modules for every
    run it loads, and each `AgentWorkflow[Model]` base would be a new entry in `typing`'s process-wide
    cache that could keep that run's whole module alive after eviction (up to the cache's 128 entries).
    """

    BOUNDED_HISTORY = True
    """Whether the run fetches history limits (offload, continue-as-new); pattern A keeps nothing to offload."""
    PINS_SPECIALISTS = False
    """Whether the run also pins the planner and every specialist (the hybrid)."""

    async def _lifecycle(self, raw: Any, carry: Any, model: type[AgentRunInput]) -> AgentRunResult:
        """Prelude, the workflow's `_execute`, epilogue; a `RunFailed` marks the run failed and fails it.

        A cancellation (whatever the run was awaiting) marks the run cancelled, archives it, and is re-raised
        so the run closes Canceled.
        """
        patches.patch_set()  # the run's first command: every patch is decided here (workflows/patches.py)
        self._progress = RunProgress.open(carry)
        if carry is None:
            set_trace_input(raw)  # as given: also the input of a run that fails validation
        start: RunStart | None = None
        try:
            start = await self._begin(raw, carry, model)
            end = await self._screen(start) or await self._execute(start)
        except SpendLimitReached as exc:
            assert start is not None  # no model is called before the run has started
            end = self._limit_reached(exc)
        except RunFailed as exc:
            if self._state != RunStatus.FAILED:  # a bad input already said so in `_accept_input`: upsert once
                self._set_state(RunStatus.FAILED)
            set_trace_output({"status": RunStatus.FAILED.value, "error": exc.message, **self._usage_so_far()})
            raise
        except BaseException as exc:  # CancelledError is a BaseException; continue-as-new passes through too
            if is_cancelled_exception(exc) and not self._ended and patches.patched(calls.CANCELLATION_PATCH):
                await self._cancelled(start)
            raise
        result = await self._finish(start, end)
        await self._progress.close()
        return result

    def _limit_reached(self, exc: SpendLimitReached) -> RunEnd:
        """A spend limit across runs refused the next model call: the run ends `budget_exceeded`, naming it."""
        assert self._ledger is not None
        if exc.spent is not None and exc.spent.llm_calls:  # replies its failed attempts were billed for
            self._ledger.record_usage(exc.spent, "LLM replies of failed attempts")
        self._spend_limit = SpendNote(limit=exc.limit, remaining=exc.remaining)
        reason = f"spend limit {exc.limit} reached"
        output = self._ledger.stop_summary(reason, ["the model call the limit refused, and everything after it"])
        workflow.set_current_details(f"**budget_exceeded**: {reason}")
        return RunEnd(RunStatus.BUDGET_EXCEEDED, {**output, "limit": exc.limit}, limit=exc.limit)

    def _usage_so_far(self) -> dict[str, Any]:
        if self._ledger is None:
            return {}
        return {"usage": self._ledger.usage.model_dump(mode="json"), "steps": self._ledger.steps}

    async def _cancelled(self, start: RunStart | None) -> None:
        """Status, `AgentStatus` and the run-end metric say cancelled; the archive records what was spent.

        Nothing else runs: the in-flight activity was cancelled with the run, and the archive is shielded so
        that it is written even if the run is cancelled again meanwhile.
        """
        self._book.withdraw(workflow.now())
        self._waiting_for = None
        self._set_state(RunStatus.CANCELLED)
        set_trace_output({"status": RunStatus.CANCELLED.value, **self._usage_so_far()})
        workflow.set_current_details("**cancelled**: the run was cancelled; nothing runs after the cancellation.")
        if start is None or self._ledger is None:
            return
        ledger = self._ledger
        output = {"summary": f"Cancelled after {ledger.steps} steps.", "done": list(ledger.done)}
        result = AgentRunResult(
            status=RunStatus.CANCELLED, output=output, usage=ledger.usage, steps=ledger.steps, trace_id=start.trace_id
        )
        await asyncio.shield(self._archive(result, RunEnd(RunStatus.CANCELLED, output), start.request))

    async def _execute(self, start: RunStart) -> RunEnd:
        """What this workflow does between prelude and epilogue."""
        raise NotImplementedError

    def _agent_label(self, request: AgentRunInput) -> str:
        """The `AgentName` search attribute and the agent the status query shows."""
        return request.agent

    async def _begin(self, raw: Any, carry: Any, model: type[AgentRunInput]) -> RunStart:
        trace_id = current_trace_id()
        pinning = patches.patched(PIN_PATCH)
        request, built_ins = self._accept_input(raw, model, known_here=not pinning)
        self._agent = self._agent_label(request)
        publish_search_attributes(agent=self._agent, pattern=self.PATTERN, customer_id=request.customer_id)
        self._set_state(RunStatus.RUNNING)
        resumed = self._resume(carry)
        if resumed is not None:
            pinned = resumed.pinned or built_ins or self._pin_built_ins(request)
            return RunStart(raw, request, resumed.trace_id, resumed.limits, resumed, pinned, registry_of(pinned))
        limits = await self._history_limits() if self.BOUNDED_HISTORY else HistoryLimits.legacy()
        self._ledger = RunLedger(budget=request.budget, started_at=workflow.now())
        pinned = await self._pin(request) if built_ins is None else built_ins
        return RunStart(raw, request, trace_id, limits, None, pinned, registry_of(pinned))

    def _accept_input(
        self, raw: Any, model: type[AgentRunInput], *, known_here: bool
    ) -> tuple[AgentRunInput, PinnedAgents | None]:
        """Validate the input (and, for runs recorded before pinning, the agents it names); a bad one fails at once.

        Returns the request and, with `known_here`, the built-in agents pinned while checking them.
        """
        try:
            request = parse_input(raw, model)
            built_ins = self._pin_built_ins(request) if known_here else None
        except Exception:
            self._set_state(RunStatus.FAILED)
            raise
        tag_trace(user_id=request.customer_id, session_id=request.session_id or workflow.info().workflow_id)
        return request, built_ins

    def _screened_inputs(self, request: AgentRunInput) -> list[tuple[str, str]]:
        """(agent, text) pairs screened before the first model call: the prompt, for the agent that reads it."""
        return [(request.agent, request.prompt)]

    async def _screen(self, start: RunStart) -> RunEnd | None:
        """Input screening before any model call or tool (workflows/screening.py); a refusal ends the run."""
        assert self._ledger is not None
        return await screen_inputs(start, self._screened_inputs(start.request), self._ledger)

    def _active_agent(self, start: RunStart, name: str) -> ActiveAgent:
        """Agent `name` as the run pinned it, ready for a loop to run as (its start, or after a handoff)."""
        profile = start.registry.agent(name)
        model = profile.model or start.request.model
        return ActiveAgent(profile, start.pinned.digests.get(name), model, start.pinned.llm_task_queue(model))

    def _handed_off(self, source: str, target: str) -> None:
        """The status query's active agent, and the UI's current details, after a handoff."""
        self._active = target
        workflow.set_current_details(f"**handoff**: {source} handed the conversation to {target}")

    def _agent_refs(self, request: AgentRunInput) -> list[AgentRef]:
        """Every agent the input names (its model says which: the gateway checks the same list before a start)."""
        return request.agent_refs()

    async def _pin(self, request: AgentRunInput) -> PinnedAgents:
        """Resolve every agent the run needs on the worker (its agents file, tool modules and MCP servers), once."""
        try:
            return await calls.resolve_agents(
                ResolveAgentsRequest(agents=self._agent_refs(request), specialists=self.PINS_SPECIALISTS)
            )
        except RunFailed:
            self._set_state(RunStatus.FAILED)
            raise

    def _pin_built_ins(self, request: AgentRunInput) -> PinnedAgents:
        """How runs recorded before pinning resolved agents: the built-in registry, with no digests to send."""
        pinned = pin(REGISTRY, self._agent_refs(request), specialists=self.PINS_SPECIALISTS)
        return pinned.model_copy(update={"digests": {}})

    async def _history_limits(self) -> HistoryLimits:
        """The worker's history limits, recorded in history by a local activity.

        Workflows may not read the environment, and limits in the workflow input would let each caller
        pick them; a marker costs a few milliseconds once per run, and a replay reads the same answer.
        """
        if not patches.patched(BOUNDED_HISTORY_PATCH):
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
        return not self._book.pending() and self._progress.handlers_finished()

    async def _continue_as_new(self, raw: Any, carry: RunCarry) -> None:
        """End this generation; the next starts with the same input, what `carry` holds, and the progress stream."""
        workflow.logger.info("continuing as new: generation %d, step %d", carry.generation, carry.ledger.steps)
        carry = carry.model_copy(update={"progress": await self._progress.hand_over()})
        workflow.continue_as_new(args=[raw, carry], initial_versioning_behavior=versioning.on_continue_as_new())

    async def _finish(self, start: RunStart, end: RunEnd) -> AgentRunResult:
        """Final status, the result, and the run's archive."""
        self._set_state(end.status)
        assert self._ledger is not None
        result = AgentRunResult(
            status=end.status,
            output=end.output,
            usage=self._ledger.usage,
            steps=self._ledger.steps,
            trace_id=start.trace_id,
            limit=end.limit,
        )
        set_trace_output(result.model_dump(mode="json"))
        await self._archive(result, end, start.request)
        return result

    async def _archive(self, result: AgentRunResult, end: RunEnd, run_input: AgentRunInput) -> None:
        """Archive the finished run; a failed archive is logged and the run still returns its result.

        The result is the product's contract and the work it reports is done; an archive is a record of
        it. Failing a completed run because a bucket was unreachable would tell the caller the work
        failed, so after its retries the failure stays visible in the history and the worker log instead.
        """
        if not patches.patched(ARCHIVE_PATCH):
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
                "customer_id": run_input.customer_id,
                "agent": run_input.agent,
                "status": result.status.value,
                "handoffs": end.handoffs,
            },
            conversations=end.conversations,
            # What a cassette or a regression eval re-runs (testkit/cassette.py); a local activity's input,
            # so it never enters history.
            input={"agent": run_input.agent, "prompt": run_input.prompt, "model": run_input.model},
        )
        try:
            await calls.archive_run(request)
        except calls.ArchiveFailed as exc:
            workflow.logger.warning("archive of run %s failed: %s", info.workflow_id, exc)
