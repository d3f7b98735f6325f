"""`BlackBoxAgentWorkflow` (pattern A): whole agents as single activities, in sequence or fanned out."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from temporalio import workflow

from workflows import versioning
from workflows.black_box_steps import BlackBoxStep, BlackBoxSteps, step_keys
from workflows.lifecycle import AgentWorkflow
from workflows.run_parts import RunEnd, RunStart

with workflow.unsafe.imports_passed_through():
    from models.blackbox import AgentStep, BlackBoxInput
    from models.run import AgentRunInput, AgentRunResult, RunStatus
    from tools.pinning import reachable_agents


@workflow.defn(name="BlackBoxAgentWorkflow", versioning_behavior=versioning.BLACK_BOX)
class BlackBoxAgentWorkflow(AgentWorkflow):
    """Each agent is one `invoke_agent` activity; every one's spending counts against the run's one budget."""

    PATTERN = "A"
    BOUNDED_HISTORY = False

    @workflow.run
    async def run(self, raw: Any = None) -> AgentRunResult:
        """Validate the input, then run the steps in sequence or in parallel and merge their outputs."""
        return await self._lifecycle(raw, None, BlackBoxInput)

    def _screened_inputs(self, request: AgentRunInput) -> list[tuple[str, str]]:
        assert isinstance(request, BlackBoxInput)
        return [(s.agent, s.prompt) for s in request.planned_steps()]

    def _agent_label(self, request: AgentRunInput) -> str:
        assert isinstance(request, BlackBoxInput)
        return request.agent if not request.steps else ",".join(dict.fromkeys(s.agent for s in request.steps))

    async def _execute(self, start: RunStart) -> RunEnd:
        request = start.request
        assert isinstance(request, BlackBoxInput) and self._ledger is not None
        planned = request.planned_steps()
        keys = step_keys([s.agent for s in planned])
        steps = [self._step(start, s, key, i) for i, (s, key) in enumerate(zip(planned, keys))]
        runner = BlackBoxSteps(
            self._ledger, request.model, keys, on_start=self._entering(steps), on_handoff=self._handed_off
        )
        stop = await (
            self._fan_out(request, runner, steps) if request.parallel else self._in_sequence(request, runner, steps)
        )
        if stop is None and runner.stopped is not None:
            status = RunStatus.STOPPED if runner.stopped.get("rule") else RunStatus.BUDGET_EXCEEDED
            stop = status, {**runner.stopped, "outputs": runner.outputs}
        if stop is not None:
            status, output = stop
        else:
            status, output = RunStatus.COMPLETED, runner.outputs if request.steps else runner.outputs[keys[0]]
        final = output if status == RunStatus.COMPLETED else None
        return RunEnd(status, output, final_answer=final, specialist_results=runner.outputs, handoffs=runner.handoffs)

    @staticmethod
    def _step(start: RunStart, step: AgentStep, key: str, i: int) -> BlackBoxStep:
        spec = start.pinned.spec(step.agent)
        return BlackBoxStep(
            key=key,
            agent=step.agent,
            prompt=step.prompt,
            label=f"step-{i + 1}",
            summary=f"step {i + 1}: invoke_agent ({step.agent})",
            where=f"step {i + 1}",
            noun=f"agent {key}",
            spec=start.pinned.digests.get(step.agent),
            model=spec.model,
            max_turns=spec.max_turns,
            llm_task_queue=start.pinned.llm_task_queue(spec.model or start.request.model),
            handoff_specs={
                name: start.pinned.digests[name]
                for name in reachable_agents(start.pinned, step.agent)
                if name in start.pinned.digests
            },
        )

    def _entering(self, steps: list[BlackBoxStep]) -> Callable[[BlackBoxStep], None]:
        """The status query's stage while a step runs: `step 2/3: analysis`."""
        position = {s.key: i + 1 for i, s in enumerate(steps)}

        def on_start(step: BlackBoxStep) -> None:
            self._stage = f"step {position[step.key]}/{len(steps)}: {step.key}"

        return on_start

    async def _in_sequence(
        self, request: BlackBoxInput, runner: BlackBoxSteps, steps: list[BlackBoxStep]
    ) -> tuple[RunStatus, Any] | None:
        for i, step in enumerate(steps):
            if i > 0 and request.approval_between_steps and (stop := await self._gate(request, runner, steps[i:])):
                return stop
            if not await runner.run(step):
                return None
        return None

    async def _fan_out(
        self, request: BlackBoxInput, runner: BlackBoxSteps, steps: list[BlackBoxStep]
    ) -> tuple[RunStatus, Any] | None:
        if request.approval_between_steps and (stop := await self._gate(request, runner, steps)):
            return stop
        await runner.fan_out(steps, request.max_concurrency)
        return None

    async def _gate(
        self, request: BlackBoxInput, runner: BlackBoxSteps, remaining: list[BlackBoxStep]
    ) -> tuple[RunStatus, Any] | None:
        """Ask a person whether to run the remaining steps; a rejection or expiry ends the run."""
        names = ", ".join(s.key for s in remaining)
        decision = await self._ask_approval(
            kind="plan",
            summary=f"run {names}",
            proposal={
                "next_steps": [{"agent": s.agent, "prompt": s.prompt} for s in remaining],
                "done": list(runner.outputs),
                "outputs_so_far": runner.outputs,
            },
            policy=request.approval,
        )
        if decision.approved:
            return None
        status = RunStatus.APPROVAL_TIMED_OUT if decision.via == "timeout" else RunStatus.REJECTED
        return status, {
            "summary": f"stopped before {names}: {status.value} by {decision.approver}",
            "comment": decision.comment,
            "outputs": runner.outputs,
        }
