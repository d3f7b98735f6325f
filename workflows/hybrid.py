"""`HybridAgentWorkflow`: plan (call_llm), consult specialists (black boxes), approve, execute (pattern B), notify."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.archiving import archive_on_completion
from workflows.base import AgentWorkflowBase
from workflows.black_box_calls import DEFAULT_MAX_OUTPUT_TOKENS, DEFAULT_MAX_TURNS, AgentRunFailed, invoke_black_box
from workflows.blackbox import step_keys
from workflows.common import current_trace_id, failure_detail, publish_search_attributes
from workflows.steered_loop import LLM_HEARTBEAT_TIMEOUT, LLM_RETRY, LLM_TIMEOUT, LlmCallFailed, SteeredLoop

with workflow.unsafe.imports_passed_through():
    from activities.llm import LlmActivities
    from activities.notify import NotifyActivities
    from models.blackbox import InvokeAgentRequest
    from models.conversation import Conversation
    from models.hybrid import HybridInput, HybridOutput, HybridPlan, NotificationRequest
    from models.llm import LlmRequest, LlmResponse
    from models.run import AgentRunResult, RunStatus
    from telemetry.metrics import record_guardrail_rejection
    from tools.catalog import PLANNER, REGISTRY
    from workflows.carry import LoopState, RunCarry
    from workflows.ledger import RunLedger
    from workflows.planning import execution_prompt, parse_plan, plan_steps, rejection_feedback

MAX_PLAN_ATTEMPTS = 3
"""Replies the planner gets per planning round to produce valid plan JSON before the run fails."""
NOTIFY_TIMEOUT = timedelta(seconds=30)
NOTIFY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30), maximum_attempts=10
)


class PlanInvalid(ApplicationError):
    """The planner did not produce a valid plan within its attempts."""


@workflow.defn(name="HybridAgentWorkflow")
class HybridAgentWorkflow(AgentWorkflowBase):
    """Five stages on one budget; each stage's activities carry a `stage N:` summary for the UI."""

    PATTERN = "hybrid"

    @workflow.run
    async def run(self, raw: Any = None, carry: Any = None) -> AgentRunResult:
        """Validate, run stages 1-4 (planning again after a rejection, within max_revisions), then notify.

        A long stage 4 continues as new; the next generation resumes stage 4 with the plan and outputs carried.
        """
        trace_id = current_trace_id()
        request = self._accept_input(raw, HybridInput, lambda r: [("agent", r.agent)])
        self._request, self._raw = request, raw
        self._agent = request.agent
        self._output = HybridOutput()
        self._conversations: dict[str, Conversation] = {}
        publish_search_attributes(agent=request.agent, pattern=self.PATTERN, customer_id=request.customer_id)
        self._set_state(RunStatus.RUNNING)
        resumed = self._resume(carry)
        self._limits = resumed.limits if resumed else await self._history_limits()
        self._trace_id, self._generation = (resumed.trace_id, resumed.generation) if resumed else (trace_id, 1)
        if resumed is None:
            self._ledger = RunLedger(budget=request.budget, started_at=workflow.now())
        try:
            if resumed is not None:
                self._output = HybridOutput.model_validate(resumed.stage_output or {})
                status = await self._run_loop(resumed.loop)
            else:
                status = await self._stages()
        except (PlanInvalid, AgentRunFailed, LlmCallFailed):
            self._set_state(RunStatus.FAILED)
            raise
        await self._notify(status)
        self._enter(None, None)
        self._set_state(status)
        output = self._output.model_dump(mode="json")
        assert self._ledger is not None
        result = AgentRunResult(
            status=status, output=output, usage=self._ledger.usage, steps=self._ledger.steps, trace_id=self._trace_id
        )
        await archive_on_completion(
            result,
            customer_id=request.customer_id,
            plan=output["plan"],
            specialist_results=output["specialist_outputs"],
            final_answer=output["answer"],
            conversations=self._conversations,
        )
        return result

    def _enter(self, stage: str | None, waiting_for: str | None) -> None:
        self._stage, self._waiting_for = stage, waiting_for
        if stage is not None:
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
            if outputs is None:
                return RunStatus.BUDGET_EXCEEDED
            self._output.specialist_outputs = outputs
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
                return await self._execute(plan, outputs)
            if decision.via == "timeout":
                self._output.stopped = f"plan approval {decision.request_id} timed out"
                return RunStatus.APPROVAL_TIMED_OUT
            reason = decision.comment or "no reason given"
            self._output.revisions.append(reason)
            if len(self._output.revisions) > self._request.max_revisions:
                self._output.stopped = f"plan rejected by {decision.approver}: {reason}"
                return RunStatus.REJECTED
            planning.add_user_text(rejection_feedback(decision.approver, reason))

    def _budget_stop(self, not_done: list[str]) -> bool:
        """True (with the stop summary recorded) when a ceiling forbids the next step."""
        assert self._ledger is not None
        if reason := self._ledger.exceeded(workflow.now()):
            self._output.stopped = self._ledger.stop_summary(reason, not_done)
            return True
        return False

    async def _plan(self, planning: Conversation) -> HybridPlan | None:
        """Stage 1: ask the planner; an invalid plan is explained to it and retried, at most MAX_PLAN_ATTEMPTS times."""
        assert self._ledger is not None
        revision = len(self._output.revisions)
        stage = "stage 1: plan" + (f" (revision {revision})" if revision else "")
        correction = ""
        for attempt in range(1, MAX_PLAN_ATTEMPTS + 1):
            if self._budget_stop(["plan", "specialists", "approval", "execution"]):
                return None
            self._enter(stage, "the planner's answer (call_llm)")
            suffix = f", attempt {attempt}" if attempt > 1 else ""
            response = await self._call_planner(planning, f"{stage} (call_llm{suffix})")
            self._ledger.record_llm(response)
            planning.add_assistant_turn(response.text or "(empty reply)", [])
            plan, correction = parse_plan(response.text, REGISTRY)
            if plan is not None:
                return plan
            record_guardrail_rejection(workflow.metric_meter(), reason="invalid_plan")
            planning.add_user_text(correction or "")
        raise PlanInvalid(
            f"the planner gave no valid plan in {MAX_PLAN_ATTEMPTS} attempts; last problem: {correction}",
            type="PlanInvalid",
            non_retryable=True,
        )

    async def _call_planner(self, planning: Conversation, summary: str) -> LlmResponse:
        assert self._ledger is not None
        request = LlmRequest(
            agent=PLANNER,
            model=self._request.model,
            conversation=planning,
            max_tokens=self._ledger.output_allowance(DEFAULT_MAX_OUTPUT_TOKENS),
        )
        try:
            return await workflow.execute_activity_method(
                LlmActivities.call_llm,
                request,
                start_to_close_timeout=LLM_TIMEOUT,
                heartbeat_timeout=LLM_HEARTBEAT_TIMEOUT,
                retry_policy=LLM_RETRY,
                summary=summary,
            )
        except ActivityError as exc:
            detail = failure_detail(exc)
            raise LlmCallFailed(
                f"call_llm failed while planning: {detail}", type="LlmCallFailed", non_retryable=True
            ) from exc

    async def _consult(self, plan: HybridPlan) -> dict[str, Any] | None:
        """Stage 2: every specialist in parallel (they are independent); None when the budget stopped them."""
        steps = plan_steps(plan)
        keys = step_keys(steps)
        outputs: dict[str, Any] = {}
        if not steps:
            return outputs
        self._enter("stage 2: specialists", f"specialists {', '.join(keys)} (invoke_agent)")
        round_label = f"plan-{len(self._output.revisions) + 1}"
        stopped: list[str] = []

        async def consult(step: Any, key: str) -> None:
            assert self._ledger is not None
            if stopped or self._budget_stop(
                [f"specialist {k}" for k in keys if k not in outputs] + ["approval", "execution"]
            ):
                stopped.append(key)
                return
            request = InvokeAgentRequest(
                agent=step.agent,
                prompt=step.prompt,
                model=self._request.model,
                max_turns=DEFAULT_MAX_TURNS,
                max_output_tokens=self._ledger.output_allowance(DEFAULT_MAX_OUTPUT_TOKENS),
                label=f"{round_label}-{key}",
            )
            result = await invoke_black_box(
                request, summary=f"stage 2: specialist {key} (invoke_agent)", where=f"stage 2 ({key})"
            )
            self._ledger.record_usage(
                result.usage,
                f"specialist {key} ({result.turns} turns)"
                + (f" stopped: {result.stopped}" if result.stopped else " answered"),
            )
            if result.stopped:
                self._output.stopped = self._ledger.stop_summary(f"{key}: {result.stopped}", ["approval", "execution"])
                stopped.append(key)
                return
            outputs[key] = result.output

        await asyncio.gather(*(consult(s, k) for s, k in zip(steps, keys)))
        self._output.specialist_outputs = dict(outputs)
        return None if stopped else {k: outputs[k] for k in keys}

    async def _execute(self, plan: HybridPlan, outputs: dict[str, Any]) -> RunStatus:
        """Stage 4: the executing agent's own loop; every inference and tool call is an activity, write tools gated."""
        return await self._run_loop(self._loop().start(execution_prompt(self._request.prompt, plan, outputs)))

    def _loop(self) -> SteeredLoop:
        assert self._ledger is not None
        return SteeredLoop(
            registry=REGISTRY,
            agent=REGISTRY.agent(self._request.agent),
            model=self._request.model,
            ledger=self._ledger,
            approval_policy=self._request.approval,
            ask_approval=self._ask_approval,
            step_label="stage 4: ",
            limits=self._limits,
            may_hand_over=self._may_continue_as_new,
        )

    async def _run_loop(self, state: LoopState) -> RunStatus:
        """Run (or resume) stage 4; a long one continues as new, carrying the earlier stages' output."""
        self._enter("stage 4: execute", f"the executing agent {self._request.agent} (call_llm / run_tool)")
        self._conversations["execution"] = state.conversation  # the loop extends it in place; archived at the end
        outcome = await self._loop().run(state)
        if outcome.handover is not None:
            assert self._ledger is not None
            self._continue_as_new(
                self._raw,
                RunCarry(
                    trace_id=self._trace_id,
                    generation=self._generation + 1,
                    limits=self._limits,
                    ledger=self._ledger,
                    loop=outcome.handover,
                    approvals=self._book.for_next_generation(),
                    stage_output=self._output.model_dump(mode="json"),
                ),
            )
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
            receipt = await workflow.execute_activity_method(
                NotifyActivities.send_notification,
                request,
                start_to_close_timeout=NOTIFY_TIMEOUT,
                retry_policy=NOTIFY_RETRY,
                summary="stage 5: notify (send_notification)",
            )
            self._output.notification = receipt.model_dump(mode="json")
        except ActivityError as exc:  # the run's work is done; a lost notification is reported, not fatal
            detail = failure_detail(exc)
            workflow.logger.warning("notification failed: %s", detail)
            self._output.notification = {"error": detail}
