"""Pattern B: a loop whose length the model decides; every inference and tool call is its own activity."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from temporalio import workflow

from workflows import activity_options, patches, tool_plan
from workflows.active_agent import ActiveAgent
from workflows.loop_model import ModelSteps, Seat
from workflows.loop_tools import AskApproval, ToolSteps, screened

with workflow.unsafe.imports_passed_through():
    from models.conversation import Conversation, ToolCall, ToolOutcome, describe_call
    from models.errors import OutputInvalid
    from models.history import HistoryLimits
    from models.llm import DEFAULT_MAX_OUTPUT_TOKENS, LlmResponse
    from models.run import ApprovalPolicy, RunStatus
    from telemetry.metrics import record_guardrail_rejection
    from telemetry.tracing import handoff_span
    from tools.final_answer import Accepted, Rejected, judge_answer
    from tools.guardrails import CircuitBreakers
    from tools.handoffs import handed_on, handoff_reason, refusal, summary_opening, transferred
    from tools.next_step import FinalText, Nudge, Stop, after_reply
    from tools.pinning import TRANSFER_PREFIX
    from tools.registry import AgentProfile, Registry, Tool
    from workflows.carry import LoopState
    from workflows.ledger import RunLedger

GUARDRAILS_PATCH = "circuit-breakers"
"""Runs recorded before the circuit breakers and tool-output screening ran without them."""
UNREADABLE_ARGUMENTS_PATCH = "unreadable-tool-arguments"
"""Runs recorded before it ran a call whose arguments were not a JSON object with no arguments (`{}`); now such a
call is refused with the problem, as in the black boxes (models/conversation.py `ToolCall.unreadable`)."""
HANDOFF_ENDS_REPLY_PATCH = "handoff-ends-reply"
"""Runs recorded before it ran the calls a reply asked for after a `full` handoff as the agent handed to; now
they are answered unrun, as in the black boxes."""
NOT_DONE = "the model had not given its final answer"


@dataclass
class LoopOutcome:
    """How the loop ended and what it produced; `handover` is set when it stopped to continue as new."""

    status: RunStatus
    output: Any
    handover: LoopState | None = None


class SteeredLoop:
    """Runs one agent until it answers without tool calls or a ceiling in the ledger stops it."""

    def __init__(
        self,
        *,
        registry: Registry,
        agent: AgentProfile,
        model: str | None,
        ledger: RunLedger,
        spec: str | None = None,
        llm_task_queue: str | None = None,
        approval_policy: ApprovalPolicy,
        ask_approval: AskApproval,
        step_label: str = "",
        limits: HistoryLimits | None = None,
        may_hand_over: Callable[[], bool] | None = None,
        agents: Callable[[str], ActiveAgent] | None = None,
        on_handoff: Callable[[str, str], None] | None = None,
    ) -> None:
        self._registry = registry
        self._seat = Seat(agent, spec, model, llm_task_queue, priced_model=model)
        self._output_corrections = 0
        self._ledger = ledger
        self._limits = limits or HistoryLimits.legacy()
        self._model_steps = ModelSteps(registry=registry, ledger=ledger, step_label=step_label)
        self._tools = ToolSteps(
            registry=registry,
            ledger=ledger,
            approval_policy=approval_policy,
            ask_approval=ask_approval,
            step_label=step_label,
            limits=self._limits,
            options=self.tool_options,
        )
        self._may_hand_over = may_hand_over
        """The workflow's say on continuing as new (no approval pending, no handler running); None: never."""
        self._agents = agents
        """The pinned agents a handoff can switch to (None: this loop cannot hand off)."""
        self._on_handoff = on_handoff
        self._summary_refused = False

    @property
    def _agent(self) -> AgentProfile:
        return self._seat.agent

    def start(self, prompt: str) -> LoopState:
        """A fresh loop state: the prompt, kept by reference when the run offloads its conversation."""
        return LoopState(conversation=Conversation.start(prompt, by_reference=self._limits.offload), prompt=prompt)

    async def run(self, state: LoopState) -> LoopOutcome:
        """Alternate `call_llm` and `run_tool` until the model is done, or hand over between steps.

        After each reply the loop does what tools/next_step.py's `after_reply` names, as both black-box engines do.
        """
        if state.active_agent and state.active_agent != self._agent.name:
            self._become(state.active_agent)  # a continued run resumes with the agent it had handed off to
        guard = CircuitBreakers(self._agent.guardrails, state.breakers) if patches.patched(GUARDRAILS_PATCH) else None
        while True:
            if reason := self._ledger.exceeded(workflow.now()):
                return self._stopped(reason, [NOT_DONE], state.last_text)
            if self._should_hand_over():
                return LoopOutcome(RunStatus.RUNNING, None, handover=state)
            if (
                self._limits.summarises
                and state.context_tokens >= self._limits.context_summary_tokens
                and not self._summary_refused
            ):
                self._summary_refused = not await self._model_steps.summarise(self._seat, state)
                continue  # a summary is a step: check the ceilings again
            fit = self._model_steps.fit(self._seat, state, DEFAULT_MAX_OUTPUT_TOKENS)
            if fit is not None and fit.refused is not None:  # the call is not made
                return self._stopped(fit.refused, [NOT_DONE], state.last_text)
            response = await self._reply(state, max_tokens=fit.output_tokens if fit else None)
            step = after_reply(guard, self._registry, self._agent, response.text, response.tool_calls)
            if isinstance(step, Stop):
                return self._tripped(step, [NOT_DONE], state.last_text)
            if isinstance(step, Nudge):
                state.conversation.add_user_text(step.message)  # counted by the no-progress breaker
            elif isinstance(step, FinalText):
                if (answered := self._judged(step.text, state.conversation)) is not None:
                    return answered
            elif (stopped := await self._tool_round(step.calls, state, guard)) is not None:
                return stopped

    async def _reply(self, state: LoopState, max_tokens: int | None) -> LlmResponse:
        """One `call_llm` step, counted and added to the conversation."""
        response = await self._model_steps.call(self._seat, state.conversation, max_tokens=max_tokens)
        if response.tool_calls and not patches.patched(UNREADABLE_ARGUMENTS_PATCH):
            # As recorded then: arguments that were not a JSON object ran as no arguments.
            calls_then = [ToolCall(id=c.id, name=c.name, arguments=c.arguments) for c in response.tool_calls]
            response = response.model_copy(update={"tool_calls": calls_then})
        self._seat.priced_model = response.model
        self._ledger.record_llm(response)
        state.last_text = response.text or state.last_text
        state.context_tokens = response.usage.input_tokens + response.usage.output_tokens
        state.conversation.add_assistant_turn(response.text, response.tool_calls, response.stored)
        return response

    def _judged(self, text: str, conversation: Conversation) -> LoopOutcome | None:
        """The outcome when the answer stands (tools/final_answer.py); None when it went back with a correction."""
        schema = self._agent.output_schema if self._seat.spec is not None else None
        verdict = judge_answer(text, schema, self._agent.name, self._output_corrections)
        if isinstance(verdict, Accepted):
            return LoopOutcome(RunStatus.COMPLETED, verdict.output)
        if isinstance(verdict, Rejected):
            raise OutputInvalid(verdict.message)
        self._output_corrections += 1  # sent back with the problems, then the run fails
        conversation.add_user_text(verdict.message)
        return None

    async def _tool_round(
        self, requested: list[ToolCall], state: LoopState, guard: CircuitBreakers | None
    ) -> LoopOutcome | None:
        """Run one reply's calls (at most the agent's limit: the rest are refused) and answer them all; the outcome
        when a ceiling or a breaker stopped the run."""
        conversation = state.conversation
        runnable, refused = self._tools.fan_in(self._agent, requested)
        ran = await self._run_tools(runnable, state, guard)
        if isinstance(ran, LoopOutcome):
            return ran
        if state.conversation is conversation:  # handed off with a fresh conversation: the old one is left
            conversation.add_tool_results(ran + refused)
        return None

    async def _run_tools(
        self, runnable: list[ToolCall], state: LoopState, guard: CircuitBreakers | None
    ) -> list[ToolOutcome] | LoopOutcome:
        """One reply's calls in the model's order, reads side by side (`tool_plan`); a ceiling or a breaker stops
        them between calls; a handoff switches the agent for the calls after it."""
        parallel = len(runnable) > 1 and patches.patched(tool_plan.PARALLEL_TOOL_CALLS_PATCH)
        overlap = partial(tool_plan.may_overlap, self._registry, self._agent)
        groups = tool_plan.batches(runnable, overlap) if parallel else [[call] for call in runnable]
        outcomes: list[ToolOutcome] = []

        def not_done() -> list[str]:
            pending = [f"{describe_call(c)} (requested, not run)" for c in runnable[len(outcomes) :]]
            return [*pending, NOT_DONE]

        for group in groups:
            while group:
                if reason := self._ledger.exceeded(workflow.now()):
                    return self._stopped(reason, not_done(), state.last_text)
                if group[0].name.startswith(TRANSFER_PREFIX) and self._agents is not None:
                    call = group.pop(0)
                    outcome, conversation = self._hand_off(call, state)
                    outcomes.append(outcome)
                    if conversation is not state.conversation:
                        state.conversation = conversation
                        return outcomes  # the next agent starts afresh: the rest of this reply is not run
                    if not outcome.is_error and patches.patched(HANDOFF_ENDS_REPLY_PATCH):
                        # The rest of the reply was the agent handed from's: answered unrun, as in a black box.
                        rest = runnable[len(outcomes) :]
                        return outcomes + [_unrun(c, handed_on(call.name.removeprefix(TRANSFER_PREFIX))) for c in rest]
                    continue
                room = self._ledger.budget.max_steps - self._ledger.steps  # each call is a step: run no more
                now, group = group[:room], group[room:]
                if guard is not None:
                    for call in now:
                        if rule := guard.call(call):
                            return self._tripped(Stop(rule), not_done(), state.last_text)
                tripped: str | None = None
                ran = await self._tools.run_batch(self._agent, now)
                for call, outcome in zip(now, ran, strict=True):  # all ran: all are counted
                    self._ledger.record_tool(call, outcome)
                    outcomes.append(screened(guard, outcome) if guard is not None else outcome)
                    if guard is not None and (rule := guard.outcome(outcome.is_error)) and tripped is None:
                        tripped = rule
                if tripped is not None:
                    return self._tripped(Stop(tripped), not_done(), state.last_text)
        return outcomes

    def _become(self, name: str) -> None:
        assert self._agents is not None
        active = self._agents(name)
        self._seat = Seat(active.profile, active.spec, active.model, active.llm_task_queue, priced_model=active.model)
        self._output_corrections = 0

    def _hand_off(self, call: ToolCall, state: LoopState) -> tuple[ToolOutcome, Conversation]:
        """Switch the active agent for the rest of the run; the next agent sees what `handoff_context` says
        (tools/handoffs.py, as in the black boxes).

        Returns the tool result and the conversation the loop goes on with: the same one (`full`), or a fresh
        one holding the request (`none`) or the request and a summary of the work so far (`summary`).
        """
        target = call.name.removeprefix(TRANSFER_PREFIX)
        source = self._agent
        if (refused := refusal(source, target)) is not None:
            return ToolOutcome(tool_call_id=call.id, name=call.name, content=refused, is_error=True), state.conversation
        reason = handoff_reason(call.arguments)
        self._become(target)
        state.active_agent = target
        self._ledger.note(f"handed off from {source.name} to {target} ({source.handoff_context} context): {reason}")
        handoff_span(source.name, target, source.handoff_context)
        if self._on_handoff is not None:
            self._on_handoff(source.name, target)
        outcome = ToolOutcome(tool_call_id=call.id, name=call.name, content=transferred(target))
        if source.handoff_context == "full":
            return outcome, state.conversation
        opening = state.prompt
        if source.handoff_context == "summary":  # the run's record of work: the workflow may not hold the messages
            opening = summary_opening(state.prompt, source.name, reason, self._ledger.done, state.last_text)
        return outcome, Conversation.start(opening, by_reference=self._limits.offload)

    def _tripped(self, stop: Stop, not_done: list[str], last_text: str) -> LoopOutcome:
        """A circuit breaker stopped the run: status `stopped`, with the rule, what was done and what was not."""
        record_guardrail_rejection(workflow.metric_meter(), reason=stop.rule)
        summary = self._ledger.stop_summary(stop.reason, not_done, last_text)
        return LoopOutcome(RunStatus.STOPPED, {**summary, "rule": stop.rule})

    def _should_hand_over(self) -> bool:
        """Between steps, once history is long (the server's suggestion or HISTORY_MAX_EVENTS), if the workflow agrees."""
        if not self._limits.continues_as_new or self._may_hand_over is None:
            return False
        info = workflow.info()
        long = info.is_continue_as_new_suggested() or info.get_current_history_length() >= self._limits.max_events
        return long and self._may_hand_over()

    def _stopped(self, reason: str, not_done: list[str], last_text: str) -> LoopOutcome:
        return LoopOutcome(RunStatus.BUDGET_EXCEEDED, self._ledger.stop_summary(reason, not_done, last_text))

    def tool_options(self, tool: Tool) -> activity_options.ActivityOptions:
        """How `run_tool` is called for `tool`: its declared timeout and retry policy, locally if it is a short read."""
        local = tool_plan.runs_locally(tool) and patches.patched(tool_plan.LOCAL_READ_TOOLS_PATCH)
        return activity_options.tool_options(tool.timeout, tool.retry, local=local)


def _unrun(call: ToolCall, why: str) -> ToolOutcome:
    return ToolOutcome(tool_call_id=call.id, name=call.name, content=why, is_error=True)
