"""`BlackBoxAgentWorkflow` (pattern A): whole agents as single activities, in sequence or fanned out."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from temporalio import workflow

from workflows.archiving import archive_on_completion
from workflows.base import AgentWorkflowBase
from workflows.black_box_calls import (  # noqa: F401  (re-exported: pattern A's public knobs)
    AGENT_HEARTBEAT_TIMEOUT,
    AGENT_RETRY,
    AGENT_TIMEOUT,
    DEFAULT_MAX_OUTPUT_TOKENS,
    DEFAULT_MAX_TURNS,
    AgentRunFailed,
    invoke_black_box,
)
from workflows.common import current_trace_id, publish_search_attributes

with workflow.unsafe.imports_passed_through():
    from models.blackbox import AgentStep, BlackBoxInput, InvokeAgentRequest, InvokeAgentResult
    from models.run import AgentRunResult, RunStatus
    from workflows.ledger import RunLedger


@dataclass
class Stop:
    """Why the run ended early, with its status and output."""

    status: RunStatus
    output: Any


@dataclass
class Progress:
    """Outputs so far, keyed by step name."""

    outputs: dict[str, Any] = field(default_factory=dict)
    stop: Stop | None = None


def step_keys(steps: list[AgentStep]) -> list[str]:
    """Output keys: the agent's name, or `agent#n` where an agent appears more than once."""
    names = [s.agent for s in steps]
    return [s.agent if names.count(s.agent) == 1 else f"{s.agent}#{i + 1}" for i, s in enumerate(steps)]


@workflow.defn(name="BlackBoxAgentWorkflow")
class BlackBoxAgentWorkflow(AgentWorkflowBase):
    """Each agent is one `invoke_agent` activity; every one's spending counts against the run's one budget."""

    PATTERN = "A"

    @workflow.run
    async def run(self, raw: Any = None) -> AgentRunResult:
        """Validate the input, then run the steps in sequence or in parallel and merge their outputs."""
        trace_id = current_trace_id()
        request = self._accept_input(
            raw,
            BlackBoxInput,
            lambda r: [(f"steps.{i}.agent" if r.steps else "agent", s.agent) for i, s in enumerate(r.planned_steps())],
        )
        steps = request.planned_steps()
        self._request = request
        self._agent = request.agent if not request.steps else ",".join(dict.fromkeys(s.agent for s in steps))
        publish_search_attributes(agent=self._agent, pattern=self.PATTERN, customer_id=request.customer_id)
        self._set_state(RunStatus.RUNNING)
        self._ledger = RunLedger(budget=request.budget, started_at=workflow.now())
        keys = step_keys(steps)
        try:
            if request.parallel:
                progress = await self._fan_out(steps, keys)
            else:
                progress = await self._in_sequence(steps, keys)
        except AgentRunFailed:
            self._set_state(RunStatus.FAILED)
            raise
        if progress.stop is not None:
            status, output = progress.stop.status, progress.stop.output
        else:
            status = RunStatus.COMPLETED
            output = progress.outputs if request.steps else progress.outputs[keys[0]]
        self._set_state(status)
        result = AgentRunResult(
            status=status, output=output, usage=self._ledger.usage, steps=self._ledger.steps, trace_id=trace_id
        )
        final = output if status == RunStatus.COMPLETED else None
        await archive_on_completion(
            result, customer_id=request.customer_id, specialist_results=progress.outputs, final_answer=final
        )
        return result

    async def _in_sequence(self, steps: list[AgentStep], keys: list[str]) -> Progress:
        progress = Progress()
        for i, (step, key) in enumerate(zip(steps, keys)):
            if i > 0 and self._request.approval_between_steps and (stop := await self._gate(steps, keys, i, progress)):
                progress.stop = stop
                return progress
            if stop := await self._run_step(step, key, i, steps, keys, progress):
                progress.stop = stop
                return progress
        return progress

    async def _fan_out(self, steps: list[AgentStep], keys: list[str]) -> Progress:
        progress = Progress()
        if self._request.approval_between_steps and (stop := await self._gate(steps, keys, 0, progress)):
            progress.stop = stop
            return progress
        slots = asyncio.Semaphore(self._request.max_concurrency)

        async def branch(i: int) -> None:
            async with slots:
                if progress.stop is None and (
                    stop := await self._run_step(steps[i], keys[i], i, steps, keys, progress)
                ):
                    progress.stop = progress.stop or stop

        await asyncio.gather(*(branch(i) for i in range(len(steps))))
        return progress

    async def _gate(self, steps: list[AgentStep], keys: list[str], i: int, progress: Progress) -> Stop | None:
        """Ask a person whether to run the remaining steps; a rejection or expiry ends the run."""
        pending = [{"agent": s.agent, "prompt": s.prompt} for s in steps[i:]]
        decision = await self._ask_approval(
            kind="plan",
            summary=f"run {', '.join(keys[i:])}",
            proposal={"next_steps": pending, "done": list(progress.outputs), "outputs_so_far": progress.outputs},
            policy=self._request.approval,
        )
        if decision.approved:
            return None
        status = RunStatus.APPROVAL_TIMED_OUT if decision.via == "timeout" else RunStatus.REJECTED
        return Stop(
            status,
            {
                "summary": f"stopped before {', '.join(keys[i:])}: {status.value} by {decision.approver}",
                "comment": decision.comment,
                "outputs": progress.outputs,
            },
        )

    async def _run_step(
        self, step: AgentStep, key: str, i: int, steps: list[AgentStep], keys: list[str], progress: Progress
    ) -> Stop | None:
        """Check the run's budget, run one black box, count its spending; a ceiling ends the run."""
        ledger = self._ledger
        assert ledger is not None
        if reason := ledger.exceeded(workflow.now()):
            not_done = [k for k in keys if k not in progress.outputs]
            return Stop(
                RunStatus.BUDGET_EXCEEDED, {**ledger.stop_summary(reason, not_done), "outputs": progress.outputs}
            )
        self._stage = f"step {i + 1}/{len(steps)}: {key}"
        result = await self._invoke(step, i, ledger.output_allowance(DEFAULT_MAX_OUTPUT_TOKENS))
        note = f"agent {key} ({result.turns} turns)" + (
            f" stopped: {result.stopped}" if result.stopped else " answered"
        )
        ledger.record_usage(result.usage, note)
        if result.stopped:
            not_done = [k for k in keys if k not in progress.outputs]
            return Stop(
                RunStatus.BUDGET_EXCEEDED,
                {**ledger.stop_summary(f"{key}: {result.stopped}", not_done), "outputs": progress.outputs},
            )
        progress.outputs[key] = result.output
        return None

    async def _invoke(self, step: AgentStep, i: int, max_output_tokens: int) -> InvokeAgentResult:
        request = InvokeAgentRequest(
            agent=step.agent,
            prompt=step.prompt,
            model=self._request.model,
            max_turns=DEFAULT_MAX_TURNS,
            max_output_tokens=max_output_tokens,
            label=f"step-{i + 1}",
        )
        return await invoke_black_box(
            request, summary=f"step {i + 1}: invoke_agent ({step.agent})", where=f"step {i + 1}"
        )
