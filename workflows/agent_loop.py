"""`AgentLoopWorkflow` (pattern B): the model steers a loop of `call_llm` and `run_tool` activities."""

from __future__ import annotations

from typing import Any

from temporalio import workflow

from workflows.archiving import archive_on_completion
from workflows.base import AgentWorkflowBase
from workflows.common import current_trace_id, publish_search_attributes
from workflows.steered_loop import LlmCallFailed, SteeredLoop

with workflow.unsafe.imports_passed_through():
    from models.run import AgentRunInput, AgentRunResult, RunStatus
    from tools.catalog import REGISTRY
    from workflows.carry import RunCarry
    from workflows.ledger import RunLedger


@workflow.defn(name="AgentLoopWorkflow")
class AgentLoopWorkflow(AgentWorkflowBase):
    """One agent, every LLM call and tool call its own activity, within the run's budget.

    A long run continues as new between steps: each generation gets the same input plus a small
    `RunCarry` (conversation reference, totals, trace id), so its history stays bounded.
    """

    PATTERN = "B"

    @workflow.run
    async def run(self, raw: Any = None, carry: Any = None) -> AgentRunResult:
        """Validate the input, then loop until the model answers or a ceiling stops it."""
        trace_id = current_trace_id()
        request = self._accept_input(raw, AgentRunInput, lambda r: [("agent", r.agent)])
        self._agent = request.agent
        publish_search_attributes(agent=request.agent, pattern=self.PATTERN, customer_id=request.customer_id)
        self._set_state(RunStatus.RUNNING)
        resumed = self._resume(carry)
        limits = resumed.limits if resumed else await self._history_limits()
        if resumed is None:
            self._ledger = RunLedger(budget=request.budget, started_at=workflow.now())
        assert self._ledger is not None
        loop = SteeredLoop(
            registry=REGISTRY,
            agent=REGISTRY.agent(request.agent),
            model=request.model,
            ledger=self._ledger,
            approval_policy=request.approval,
            ask_approval=self._ask_approval,
            limits=limits,
            may_hand_over=self._may_continue_as_new,
        )
        trace_id = resumed.trace_id if resumed else trace_id
        state = resumed.loop if resumed else loop.start(request.prompt)
        try:
            outcome = await loop.run(state)
        except LlmCallFailed:
            self._set_state(RunStatus.FAILED)
            raise
        if outcome.handover is not None:
            generation = resumed.generation + 1 if resumed else 2
            self._continue_as_new(
                raw,
                RunCarry(
                    trace_id=trace_id,
                    generation=generation,
                    limits=limits,
                    ledger=self._ledger,
                    loop=outcome.handover,
                    approvals=self._book.for_next_generation(),
                ),
            )
        self._set_state(outcome.status)
        result = AgentRunResult(
            status=outcome.status,
            output=outcome.output,
            usage=self._ledger.usage,
            steps=self._ledger.steps,
            trace_id=trace_id,
        )
        final = outcome.output if outcome.status == RunStatus.COMPLETED else None
        await archive_on_completion(
            result, customer_id=request.customer_id, final_answer=final, conversations={"agent": state.conversation}
        )
        return result
