"""`AgentLoopWorkflow` (pattern B): the model steers a loop of `call_llm` and `run_tool` activities."""

from __future__ import annotations

from typing import Any

from temporalio import workflow

from workflows import versioning
from workflows.lifecycle import AgentWorkflow
from workflows.run_parts import RunEnd, RunStart
from workflows.steered_loop import SteeredLoop

with workflow.unsafe.imports_passed_through():
    from models.run import AgentRunInput, AgentRunResult, RunStatus
    from workflows.carry import RunCarry


@workflow.defn(name="AgentLoopWorkflow", versioning_behavior=versioning.AGENT_LOOP)
class AgentLoopWorkflow(AgentWorkflow):
    """One agent, every LLM call and tool call its own activity, within the run's budget.

    A long run continues as new between steps: each generation gets the same input plus a small
    `RunCarry` (conversation reference, totals, trace id), so its history stays bounded.
    """

    PATTERN = "B"

    @workflow.run
    async def run(self, raw: Any = None, carry: Any = None) -> AgentRunResult:
        """Validate the input, then loop until the model answers or a ceiling stops it."""
        return await self._lifecycle(raw, carry, AgentRunInput)

    async def _execute(self, start: RunStart) -> RunEnd:
        request = start.request
        assert self._ledger is not None
        first = self._active_agent(start, request.agent)
        loop = SteeredLoop(
            registry=start.registry,
            agent=first.profile,
            spec=first.spec,
            llm_task_queue=first.llm_task_queue,
            model=first.model,
            agents=lambda name: self._active_agent(start, name),
            on_handoff=self._handed_off,
            ledger=self._ledger,
            approval_policy=request.approval,
            ask_approval=self._ask_approval,
            limits=start.limits,
            may_hand_over=self._may_continue_as_new,
        )
        state = start.resumed.loop if start.resumed else loop.start(request.prompt)
        self._active = state.active_agent  # after a continue-as-new, the agent handed off to
        outcome = await loop.run(state)
        if outcome.handover is not None:
            carry = RunCarry(
                trace_id=start.trace_id,
                generation=start.generation + 1,
                limits=start.limits,
                ledger=self._ledger,
                loop=outcome.handover,
                approvals=self._book.for_next_generation(),
                pinned=start.pinned,
            )
            await self._continue_as_new(start.raw, carry)
        final = outcome.output if outcome.status == RunStatus.COMPLETED else None
        return RunEnd(outcome.status, outcome.output, final_answer=final, conversations={"agent": state.conversation})
