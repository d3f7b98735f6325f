"""`HybridAgentWorkflow`: plan (call_llm), consult specialists (black boxes), approve, execute (pattern B), notify."""

from __future__ import annotations

from typing import Any

from temporalio import workflow

from workflows import calls, patches, versioning
from workflows.black_box_steps import BlackBoxStep, BlackBoxSteps, step_keys
from workflows.lifecycle import AgentWorkflow
from workflows.run_parts import RunEnd, RunStart
from workflows.steered_loop import SteeredLoop

with workflow.unsafe.imports_passed_through():
    from models.budget import BUDGET_ESTIMATES_PATCH, estimate_call_input
    from models.conversation import Conversation
    from models.errors import PlanInvalid
    from models.hybrid import HybridInput, HybridOutput, HybridPlan, NotificationRequest
    from models.llm import DEFAULT_MAX_OUTPUT_TOKENS, LlmRequest
    from models.run import AgentRunResult, RunStatus
    from telemetry.metrics import record_guardrail_rejection
    from tools.pinning import PLANNER
    from workflows.carry import LoopState, RunCarry
    from workflows.planning import execution_prompt, parse_plan, rejection_feedback

BUDGET_BEFORE_APPROVAL_PATCH = "budget-before-plan-approval"
"""Runs recorded before it asked for plan approval whatever the budget had left; they replay so."""
MAX_PLAN_ATTEMPTS = 3
"""Replies the planner gets per planning round to produce valid plan JSON before the run fails."""


@workflow.defn(name="HybridAgentWorkflow", versioning_behavior=versioning.HYBRID)
class HybridAgentWorkflow(AgentWorkflow):
    """Five stages on one budget; each stage's activities carry a `stage N:` summary for the UI."""

    PATTERN = "hybrid"
    PINS_SPECIALISTS = True

    def __init__(self) -> None:
        super().__init__()
        self._start: RunStart | None = None
        self._output = HybridOutput()
        self._conversations: dict[str, Conversation] = {}
        """Conversations by role (`planning`, `execution`), archived at the end."""

    @workflow.run
    async def run(self, raw: Any = None, carry: Any = None) -> AgentRunResult:
        """Validate, run stages 1-4 (planning again after a rejection, within max_revisions), then notify.

        A long stage 4 continues as new; the next generation resumes stage 4 with the plan and outputs carried.
        """
        return await self._lifecycle(raw, carry, HybridInput)

    @property
    def _run(self) -> RunStart:
        assert self._start is not None
        return self._start

    @property
    def _request(self) -> HybridInput:
        request = self._run.request
        assert isinstance(request, HybridInput)
        return request

    async def _execute(self, start: RunStart) -> RunEnd:
        self._start = start
        if start.resumed is not None:
            self._output = HybridOutput.model_validate(start.resumed.stage_output or {})
            status = await self._run_loop(start.resumed.loop)
        else:
            status = await self._stages()
        await self._notify(status)
        self._enter(None, None)
        output = self._output.model_dump(mode="json")
        return RunEnd(
            status,
            output,
            final_answer=output["answer"],
            plan=output["plan"],
            specialist_results=output["specialist_outputs"],
            conversations=self._conversations,
        )

    def _enter(self, stage: str | None, waiting_for: str | None) -> None:
        self._stage, self._waiting_for = stage, waiting_for
        if stage is not None:
            self._progress.stage(stage, waiting_for)
            workflow.set_current_details(f"**{stage}** — waiting for {waiting_for}")

    async def _stages(self) -> RunStatus:
        """Stages 1-4; returns how the run ended."""
        planning = self._conversations["planning"] = Conversation.start(self._request.prompt)
        while True:
            plan = await self._plan(planning)
            if plan is None:
                return RunStatus.BUDGET_EXCEEDED
            self._output.plan = plan
            outputs = await self._consult(plan)
            if outputs is None:  # a specialist's guardrail, or the budget, stopped stage 2
                stopped = self._output.stopped
                return (
                    RunStatus.STOPPED
                    if isinstance(stopped, dict) and stopped.get("rule")
                    else RunStatus.BUDGET_EXCEEDED
                )
            self._output.specialist_outputs = outputs
            if self._budget_spent_before_approval():
                return RunStatus.BUDGET_EXCEEDED
            self._enter("stage 3: approval", "approval of the plan")
            decision = await self._ask_approval(
                kind="plan",
                summary=f"approve plan: {plan.summary[:200]}",
                proposal={
                    "plan": plan.model_dump(mode="json"),
                    "specialist_outputs": outputs,
                    "revision": len(self._output.revisions),
                },
                policy=self._request.approval,
            )
            if decision.approved:
                return await self._run_loop(self._loop().start(execution_prompt(self._request.prompt, plan, outputs)))
            if decision.via == "timeout":
                self._output.stopped = f"plan approval {decision.request_id} timed out"
                return RunStatus.APPROVAL_TIMED_OUT
            reason = decision.comment or "no reason given"
            self._output.revisions.append(reason)
            if len(self._output.revisions) > self._request.max_revisions:
                self._output.stopped = f"plan rejected by {decision.approver}: {reason}"
                return RunStatus.REJECTED
            planning.add_user_text(rejection_feedback(decision.approver, reason))

    def _budget_spent_before_approval(self) -> bool:
        """Nobody is asked to approve a plan the budget can no longer execute."""
        assert self._ledger is not None
        reason = self._ledger.exceeded(workflow.now())
        if reason is None or not patches.patched(BUDGET_BEFORE_APPROVAL_PATCH):
            return False
        self._output.stopped = self._ledger.stop_summary(reason, ["approval", "execution"])
        return True

    async def _plan(self, planning: Conversation) -> HybridPlan | None:
        """Stage 1: ask the planner; an invalid plan is explained to it and retried, at most MAX_PLAN_ATTEMPTS times."""
        ledger = self._ledger
        assert ledger is not None
        revision = len(self._output.revisions)
        stage = "stage 1: plan" + (f" (revision {revision})" if revision else "")
        correction: str | None = ""
        for attempt in range(1, MAX_PLAN_ATTEMPTS + 1):
            if reason := ledger.exceeded(workflow.now()):
                self._output.stopped = ledger.stop_summary(reason, ["plan", "specialists", "approval", "execution"])
                return None
            self._enter(stage, "the planner's answer (call_llm)")
            suffix = f", attempt {attempt}" if attempt > 1 else ""
            planner = self._run.pinned.spec(PLANNER)
            model = planner.model or self._request.model
            max_tokens = ledger.output_allowance(DEFAULT_MAX_OUTPUT_TOKENS)
            if patches.patched(BUDGET_ESTIMATES_PATCH):  # the planner has no tools: its prompt and the conversation
                estimate = estimate_call_input(system=planner.instructions, tools=[], conversation=planning)
                fit = ledger.fit_next_call(estimate, model, DEFAULT_MAX_OUTPUT_TOKENS)
                if fit.refused is not None:  # the call is not made
                    self._output.stopped = ledger.stop_summary(
                        fit.refused, ["plan", "specialists", "approval", "execution"]
                    )
                    return None
                max_tokens = fit.output_tokens
            request = LlmRequest(
                agent=PLANNER,
                spec=self._run.pinned.digests.get(PLANNER),
                model=model,
                conversation=planning,
                max_tokens=max_tokens,
            )
            response = await calls.call_llm(
                request,
                summary=f"{stage} (call_llm{suffix})",
                where="while planning",
                task_queue=self._run.pinned.llm_task_queue(request.model),
            )
            ledger.record_llm(response)
            planning.add_assistant_turn(response.text or "(empty reply)", [])
            plan, correction = parse_plan(response.text, self._run.registry)
            if plan is not None:
                return plan
            record_guardrail_rejection(workflow.metric_meter(), reason="invalid_plan")
            planning.add_user_text(correction or "")
        raise PlanInvalid(f"the planner gave no valid plan in {MAX_PLAN_ATTEMPTS} attempts; last problem: {correction}")

    async def _consult(self, plan: HybridPlan) -> dict[str, Any] | None:
        """Stage 2: every specialist in parallel (they are independent); None when the budget stopped them."""
        assert self._ledger is not None
        keys = step_keys([c.agent for c in plan.consultations])
        if not keys:
            return {}
        self._enter("stage 2: specialists", f"specialists {', '.join(keys)} (invoke_agent)")
        round_label = f"plan-{len(self._output.revisions) + 1}"
        steps = [
            BlackBoxStep(
                key=key,
                agent=c.agent,
                prompt=c.prompt,
                label=f"{round_label}-{key}",
                summary=f"stage 2: specialist {key} (invoke_agent)",
                where=f"stage 2 ({key})",
                noun=f"specialist {key}",
                spec=self._run.pinned.digests.get(c.agent),
                model=self._run.pinned.spec(c.agent).model,
                max_turns=self._run.pinned.spec(c.agent).max_turns,
                llm_task_queue=self._run.pinned.llm_task_queue(
                    self._run.pinned.spec(c.agent).model or self._request.model
                ),
            )
            for c, key in zip(plan.consultations, keys)
        ]
        runner = BlackBoxSteps(
            self._ledger,
            self._request.model,
            keys,
            pending_label=lambda key: f"specialist {key}",
            later=["approval", "execution"],
        )
        answered = await runner.fan_out(steps, bound=len(steps))
        self._output.specialist_outputs = dict(runner.outputs)
        if not answered:
            self._output.stopped = runner.stopped
            return None
        return {k: runner.outputs[k] for k in keys}

    def _loop(self) -> SteeredLoop:
        assert self._ledger is not None
        first = self._active_agent(self._run, self._request.agent)
        return SteeredLoop(
            registry=self._run.registry,
            agent=first.profile,
            spec=first.spec,
            llm_task_queue=first.llm_task_queue,
            model=first.model,
            agents=lambda name: self._active_agent(self._run, name),
            on_handoff=self._handed_off,
            ledger=self._ledger,
            approval_policy=self._request.approval,
            ask_approval=self._ask_approval,
            step_label="stage 4: ",
            limits=self._run.limits,
            may_hand_over=self._may_continue_as_new,
        )

    async def _run_loop(self, state: LoopState) -> RunStatus:
        """Stage 4 (started or resumed): the executing agent's own loop, write tools gated; a long one continues as new."""
        self._enter("stage 4: execute", f"the executing agent {self._request.agent} (call_llm / run_tool)")
        self._conversations["execution"] = state.conversation  # the loop extends it in place
        outcome = await self._loop().run(state)
        if outcome.handover is not None:
            assert self._ledger is not None
            carry = RunCarry(
                trace_id=self._run.trace_id,
                generation=self._run.generation + 1,
                limits=self._run.limits,
                ledger=self._ledger,
                loop=outcome.handover,
                approvals=self._book.for_next_generation(),
                stage_output=self._output.model_dump(mode="json"),
                pinned=self._run.pinned,
            )
            await self._continue_as_new(self._run.raw, carry)
        if outcome.status == RunStatus.COMPLETED:
            self._output.answer = outcome.output
        else:
            self._output.stopped = outcome.output
        return outcome.status

    async def _notify(self, status: RunStatus) -> None:
        """Stage 5: one notification keyed by the workflow id, so a retry or replay never sends a second."""
        self._enter("stage 5: notify", "the notification (send_notification)")
        info = workflow.info()
        prompt = self._request.prompt
        body = {
            "status": status.value,
            "prompt": prompt,
            "answer": self._output.answer,
            "stopped": self._output.stopped,
            "plan_summary": self._output.plan.summary if self._output.plan else None,
            "usage": self._ledger.usage.model_dump(mode="json") if self._ledger else None,
        }
        request = NotificationRequest(
            idempotency_key=info.workflow_id,
            workflow_id=info.workflow_id,
            status=status.value,
            subject=f"{status.value}: {prompt[:80]}",
            body=body,
        )
        try:
            receipt = await calls.send_notification(request, summary="stage 5: notify (send_notification)")
            self._output.notification = receipt.model_dump(mode="json")
        except calls.NotificationFailed as exc:  # the run's work is done; a lost notification is reported, not fatal
            workflow.logger.warning("notification failed: %s", exc)
            self._output.notification = {"error": str(exc)}
