"""Pattern B: a loop whose length the model decides; every inference and tool call is its own activity."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

from temporalio import workflow

from workflows import calls, patches, tool_plan
from workflows.active_agent import ActiveAgent

with workflow.unsafe.imports_passed_through():
    from models.approval import Decision
    from models.budget import BUDGET_ESTIMATES_PATCH, CallFit, estimate_call_input
    from models.conversation import Conversation, ToolCall, ToolOutcome
    from models.errors import LlmCallFailed, OutputInvalid
    from models.history import RECENT_MESSAGES_KEPT, HistoryLimits
    from models.llm import DEFAULT_MAX_OUTPUT_TOKENS, SUMMARY_MAX_OUTPUT_TOKENS, LlmRequest, LlmResponse
    from models.run import ApprovalPolicy, RunStatus
    from models.tooling import ToolInvocation, refused_tool_call_message
    from telemetry.metrics import record_guardrail_rejection
    from telemetry.tracing import tracer
    from tools.guardrails import CircuitBreakers, screen_tool_output
    from tools.output_check import CORRECTIONS, check_output, correction
    from tools.pinning import TRANSFER_PREFIX
    from tools.registry import AgentProfile, Registry, Tool, check_tool_call
    from workflows.carry import LoopState
    from workflows.ledger import RunLedger, describe_call

AskApproval = Callable[..., Awaitable[Decision]]
TOOL_FAN_IN_PATCH = "bounded-tool-fan-in"
GUARDRAILS_PATCH = "circuit-breakers"
EMPTY_REPLY_NUDGE = "Your reply was empty. Call a tool, or give your final answer."
"""Runs recorded before the circuit breakers and tool-output screening ran without them."""
"""Runs recorded before it ran every tool call of a reply, however many; they replay so."""


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
        self._agent = agent
        self._spec = spec
        self._llm_task_queue = llm_task_queue
        """The provider's own task queue (LLM_RATE_LIMITS), or None: the run's."""
        """The pinned spec's digest, sent with every call_llm (None for runs recorded before pinning)."""
        self._model = model
        self._output_corrections = 0
        self._ledger = ledger
        self._policy = approval_policy
        self._ask_approval = ask_approval
        self._label = step_label
        self._limits = limits or HistoryLimits.legacy()
        self._may_hand_over = may_hand_over
        """The workflow's say on continuing as new (no approval pending, no handler running); None: never."""
        self._agents = agents
        """The pinned agents a handoff can switch to (None: this loop cannot hand off)."""
        self._on_handoff = on_handoff
        self._priced_model = model
        """The model the next call is priced at: the run's, then the one the last reply named (None: the dearest)."""
        self._summary_refused = False

    def start(self, prompt: str) -> LoopState:
        """A fresh loop state: the prompt, kept by reference when the run offloads its conversation."""
        return LoopState(conversation=Conversation.start(prompt, by_reference=self._limits.offload), prompt=prompt)

    async def run(self, state: LoopState) -> LoopOutcome:
        """Alternate `call_llm` and `run_tool` until the model is done, or hand over between steps."""
        if state.active_agent and state.active_agent != self._agent.name:
            self._become(state.active_agent)  # a continued run resumes with the agent it had handed off to
        conversation = state.conversation
        guard = CircuitBreakers(self._agent.guardrails, state.breakers) if patches.patched(GUARDRAILS_PATCH) else None
        while True:
            if reason := self._ledger.exceeded(workflow.now()):
                return self._stopped(reason, ["the model had not given its final answer"], state.last_text)
            if self._should_hand_over():
                return LoopOutcome(RunStatus.RUNNING, None, handover=state)
            if (
                self._limits.summarises
                and state.context_tokens >= self._limits.context_summary_tokens
                and not self._summary_refused
            ):
                await self._summarise(state)
                continue  # a summary is a step: check the ceilings again
            fit = self._fit(state, DEFAULT_MAX_OUTPUT_TOKENS)
            if fit is not None and fit.refused is not None:  # the call is not made
                return self._stopped(fit.refused, ["the model had not given its final answer"], state.last_text)
            response = await self._call_llm(conversation, max_tokens=fit.output_tokens if fit else None)
            self._priced_model = response.model
            self._ledger.record_llm(response)
            state.last_text = response.text or state.last_text
            state.context_tokens = response.usage.input_tokens + response.usage.output_tokens
            conversation.add_assistant_turn(response.text, response.tool_calls, response.stored)
            if guard is not None and (rule := self._idle(guard, response)):
                return self._tripped(rule, ["the model had not given its final answer"], state.last_text)
            if not response.tool_calls and guard is not None and not response.text.strip():
                conversation.add_user_text(EMPTY_REPLY_NUDGE)  # counted by the no-progress breaker above
                continue
            if not response.tool_calls:
                schema = self._agent.output_schema if self._spec is not None else None
                if schema is None:
                    return LoopOutcome(RunStatus.COMPLETED, response.text)
                value, problems = check_output(response.text, schema, self._agent.name)
                if problems is None:
                    return LoopOutcome(RunStatus.COMPLETED, value)
                if self._output_corrections >= CORRECTIONS:
                    raise OutputInvalid(
                        f"agent {self._agent.name} answered twice with output that does not match its "
                        f"output_schema: {problems}"
                    )
                self._output_corrections += 1  # sent back with the problems, then the run fails
                conversation.add_user_text(correction(problems, schema))
                continue
            runnable, refused = self._fan_in(response.tool_calls)
            ran = await self._run_tools(runnable, state, guard)
            if isinstance(ran, LoopOutcome):
                return ran
            if state.conversation is not conversation:  # handed off with a fresh conversation: the old one is left
                conversation = state.conversation
                continue
            conversation.add_tool_results(ran + refused)

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
            return [*pending, "the model had not given its final answer"]

        for group in groups:
            while group:
                if reason := self._ledger.exceeded(workflow.now()):
                    return self._stopped(reason, not_done(), state.last_text)
                if group[0].name.startswith(TRANSFER_PREFIX) and self._agents is not None:
                    outcome, conversation = self._hand_off(group.pop(0), state)
                    outcomes.append(outcome)
                    if conversation is not state.conversation:
                        state.conversation = conversation
                        return outcomes  # the next agent starts afresh: the rest of this reply is not run
                    continue
                room = self._ledger.budget.max_steps - self._ledger.steps  # each call is a step: run no more
                now, group = group[:room], group[room:]
                if guard is not None:
                    for call in now:
                        if rule := guard.call(call.name, call.arguments):
                            return self._tripped(rule, not_done(), state.last_text)
                tripped: str | None = None
                for call, outcome in zip(now, await self._run_batch(now), strict=True):  # all ran: all are counted
                    self._ledger.record_tool(call, outcome)
                    outcomes.append(self._screened(guard, outcome) if guard is not None else outcome)
                    if guard is not None and (rule := guard.outcome(outcome.is_error)) and tripped is None:
                        tripped = rule
                if tripped is not None:
                    return self._tripped(tripped, not_done(), state.last_text)
        return outcomes

    async def _run_batch(self, batch: list[ToolCall]) -> list[ToolOutcome]:
        """Run `batch` concurrently (at most MAX_CONCURRENT_TOOL_CALLS at once); outcomes in its order."""
        first = self._ledger.steps + 1
        if len(batch) == 1:
            return [await self._run_tool(batch[0], first)]
        gate = asyncio.Semaphore(tool_plan.MAX_CONCURRENT_TOOL_CALLS)

        async def one(index: int, call: ToolCall) -> ToolOutcome:
            async with gate:
                return await self._run_tool(call, first + index)

        return list(await asyncio.gather(*(one(i, call) for i, call in enumerate(batch))))

    def _become(self, name: str) -> None:
        assert self._agents is not None
        active = self._agents(name)
        self._agent, self._spec, self._model = active.profile, active.spec, active.model
        self._priced_model = active.model
        self._llm_task_queue = active.llm_task_queue
        self._output_corrections = 0

    def _hand_off(self, call: ToolCall, state: LoopState) -> tuple[ToolOutcome, Conversation]:
        """Switch the active agent for the rest of the run; the next agent sees what `handoff_context` says.

        Returns the tool result and the conversation the loop goes on with: the same one (`full`), or a fresh
        one holding the request (`none`) or the request and a summary of the work so far (`summary`).
        """
        target = call.name.removeprefix(TRANSFER_PREFIX)
        source = self._agent
        if target not in source.handoffs:
            offered = ", ".join(source.handoffs) or "none"
            content = f"Error: agent {source.name!r} cannot hand off to {target!r} (it can hand off to: {offered})."
            return ToolOutcome(tool_call_id=call.id, name=call.name, content=content, is_error=True), state.conversation
        reason = str(call.arguments.get("reason") or "no reason given")
        self._become(target)
        state.active_agent = target
        self._ledger.note(f"handed off from {source.name} to {target} ({source.handoff_context} context): {reason}")
        with tracer().start_as_current_span(
            f"handoff {source.name} -> {target}",
            attributes={"handoff.from": source.name, "handoff.to": target, "handoff.context": source.handoff_context},
        ):
            pass
        if self._on_handoff is not None:
            self._on_handoff(source.name, target)
        outcome = ToolOutcome(tool_call_id=call.id, name=call.name, content=f"Transferred to {target}.")
        if source.handoff_context == "full":
            return outcome, state.conversation
        opening = state.prompt
        if source.handoff_context == "summary":
            done = "; ".join(self._ledger.done[-10:]) or "nothing yet"
            opening = (
                f"{state.prompt}\n\n(Handed over by agent {source.name}: {reason}. Work so far: {done}. "
                f"Its last message: {state.last_text or '(none)'})"
            )
        return outcome, Conversation.start(opening, by_reference=self._limits.offload)

    def _idle(self, guard: CircuitBreakers, response: LlmResponse) -> str | None:
        """The no-progress breaker after a reply: no call and no answer, or only calls the checks refuse."""
        refused = sum(
            1
            for c in response.tool_calls
            if c.name.removeprefix(TRANSFER_PREFIX) not in self._agent.handoffs
            and check_tool_call(self._registry, self._agent, c.name, c.arguments).tool is None
        )
        calls_asked = [(c.name, c.arguments) for c in response.tool_calls]
        return guard.reply(text=response.text, calls=calls_asked, refused=refused)

    def _screened(self, guard: CircuitBreakers, outcome: ToolOutcome) -> ToolOutcome:
        """A tool output that reads like instructions to the model is marked or withheld, as the agent declares."""
        content, rule = screen_tool_output(outcome.content, guard.policy)
        if rule is None:
            return outcome
        record_guardrail_rejection(workflow.metric_meter(), reason=f"tool_output:{rule}")
        return outcome.model_copy(update={"content": content})

    def _tripped(self, rule: str, not_done: list[str], last_text: str) -> LoopOutcome:
        """A circuit breaker stopped the run: status `stopped`, with the rule, what was done and what was not."""
        record_guardrail_rejection(workflow.metric_meter(), reason=rule.split(":", 1)[0])
        summary = self._ledger.stop_summary(rule, not_done, last_text)
        return LoopOutcome(RunStatus.STOPPED, {**summary, "rule": rule.split(":", 1)[0]})

    def _fan_in(self, requested: list[ToolCall]) -> tuple[list[ToolCall], list[ToolOutcome]]:
        """The tool calls of one reply that run (at most the agent's limit), and error results for the rest."""
        limit = self._agent.max_tool_calls_per_turn
        if len(requested) <= limit or not patches.patched(TOOL_FAN_IN_PATCH):
            return requested, []
        record_guardrail_rejection(workflow.metric_meter(), reason="too_many_tool_calls")
        message = refused_tool_call_message(len(requested), limit)
        refused = [
            ToolOutcome(tool_call_id=c.id, name=c.name, content=message, is_error=True) for c in requested[limit:]
        ]
        return requested[:limit], refused

    def _should_hand_over(self) -> bool:
        """Between steps, once history is long (the server's suggestion or HISTORY_MAX_EVENTS), if the workflow agrees."""
        if not self._limits.continues_as_new or self._may_hand_over is None:
            return False
        info = workflow.info()
        long = info.is_continue_as_new_suggested() or info.get_current_history_length() >= self._limits.max_events
        return long and self._may_hand_over()

    def _fit(self, state: LoopState, default_output: int) -> CallFit | None:
        """The next call's output allowance after its estimated input, or its refusal (None: runs recorded before)."""
        if not patches.patched(BUDGET_ESTIMATES_PATCH):
            return None
        try:
            tools = self._registry.tools_of(self._agent)
        except KeyError:  # a tool the workflow's registry lacks: the estimate goes without its declaration
            tools = []
        estimate = estimate_call_input(
            system=self._agent.instructions,
            tools=[{"name": t.name, "description": t.description, "input_schema": t.input_schema()} for t in tools],
            conversation=state.conversation,
            context_tokens=state.context_tokens,
        )
        return self._ledger.fit_next_call(estimate, self._priced_model, default_output)

    async def _summarise(self, state: LoopState) -> None:
        """One `call_llm` step condenses the older turns; the conversation then points at the shorter chain."""
        fit = self._fit(state, SUMMARY_MAX_OUTPUT_TOKENS)  # its input is at most the context measured last
        if fit is not None and fit.refused is not None:
            self._summary_refused = True  # the next reply's own estimate decides whether the run goes on
            return
        state.context_tokens = 0  # measured again by the next reply
        if state.conversation.length <= RECENT_MESSAGES_KEPT + 2:
            return  # too few turns to condense: the context is big because of the recent ones
        response = await self._call_llm(
            state.conversation, task="summarise", max_tokens=fit.output_tokens if fit else None
        )
        if response.stored is not None:
            state.conversation.adopt(response.stored)
        if response.summarised:
            self._ledger.record_usage(response.usage, f"LLM summarised {response.summarised} earlier messages")

    def _stopped(self, reason: str, not_done: list[str], last_text: str) -> LoopOutcome:
        return LoopOutcome(RunStatus.BUDGET_EXCEEDED, self._ledger.stop_summary(reason, not_done, last_text))

    async def _call_llm(
        self,
        conversation: Conversation,
        task: Literal["reply", "summarise"] = "reply",
        max_tokens: int | None = None,
    ) -> LlmResponse:
        """One `call_llm` step; `max_tokens` is its fitted output allowance (None: runs recorded before estimates)."""
        summarising = task == "summarise"
        default = SUMMARY_MAX_OUTPUT_TOKENS if summarising else DEFAULT_MAX_OUTPUT_TOKENS
        request = LlmRequest(
            agent=self._agent.name,
            spec=self._spec,
            model=self._model,
            conversation=conversation,
            max_tokens=max_tokens if max_tokens is not None else self._ledger.output_allowance(default),
            task=task,
        )
        step = self._ledger.steps + 1
        what = "summarise earlier turns" if summarising else self._agent.name
        try:
            return await calls.call_llm(
                request,
                summary=f"{self._label}step {step}: call_llm ({what})",
                where=f"at step {step}",
                task_queue=self._llm_task_queue,
            )
        except LlmCallFailed as exc:
            if exc.spent is not None and exc.spent.llm_calls:  # replies its failed attempts were billed for
                self._ledger.record_usage(exc.spent, "LLM replies of failed call_llm attempts")
            raise

    async def _run_tool(self, call: ToolCall, step: int) -> ToolOutcome:
        check = check_tool_call(self._registry, self._agent, call.name, call.arguments)
        if check.tool is None:
            record_guardrail_rejection(workflow.metric_meter(), reason=check.reason or "refused")
            return ToolOutcome(tool_call_id=call.id, name=call.name, content=check.error or "", is_error=True)
        tool = check.tool
        if tool.requires_approval:
            decision = await self._ask_approval(
                kind="tool_call",
                summary=f"run {describe_call(call)}",
                proposal={"tool": call.name, "arguments": call.arguments},
                policy=self._policy,
            )
            if not decision.approved:
                why = (
                    "approval timed out"
                    if decision.via == "timeout"
                    else f"rejected by {decision.approver}: {decision.comment or 'no reason given'}"
                )
                return ToolOutcome(tool_call_id=call.id, name=call.name, content=f"Not run: {why}", is_error=True)
        return await self._execute(tool, call, step)

    def tool_options(self, tool: Tool) -> calls.ActivityOptions:
        """How `run_tool` is called for `tool`: its declared timeout and retry policy, locally if it is a short read."""
        local = tool_plan.runs_locally(tool) and patches.patched(tool_plan.LOCAL_READ_TOOLS_PATCH)
        return calls.tool_options(tool.timeout, tool.retry, local=local)

    async def _execute(self, tool: Tool, call: ToolCall, step: int) -> ToolOutcome:
        invocation = ToolInvocation(
            agent=self._agent.name,
            call=call,
            idempotency_key=f"{workflow.info().workflow_id}:{self._label}step-{step}:{call.id}",
            offload=self._limits.offload,
        )
        try:
            return await calls.run_tool(
                invocation,
                self.tool_options(tool),
                summary=f"{self._label}step {step}: {describe_call(call, 80)}",
            )
        except calls.ToolCallFailed as exc:
            return ToolOutcome(tool_call_id=call.id, name=call.name, content=f"Error: {exc}", is_error=True)
