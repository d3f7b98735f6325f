"""The Claude tool loop, run whole inside one activity: `AnthropicProvider.complete` plus registry tools.

The loop's policy is every loop's (activities/black_box/engine.py), applied as the pattern-B loop applies it.
What differs is this engine's own: it holds the whole conversation in the activity (checkpointed whole, where a
loop's steps are in history), and it runs a reply's calls one by one (a loop runs reads side by side).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from temporalio import activity

from activities.black_box.checkpoint import pending_calls, unacted_answer
from activities.black_box.engine import BlackBoxTools, EngineRun, screened_outcome
from activities.black_box.handoffs import HandoffRoster, record_handoff
from activities.providers.anthropic_provider import AnthropicProvider, count_input_tokens
from models.blackbox import InvokeAgentResult
from models.conversation import Conversation, ToolCall, ToolOutcome
from models.errors import AgentOutputInvalid
from models.llm import LlmResponse
from telemetry.metrics import activity_meter, record_guardrail_rejection
from tools.final_answer import Accepted, Rejected, instructions_for, judge_answer
from tools.guardrails import CircuitBreakers
from tools.handoffs import (
    black_box_refusal,
    handed_on,
    handoff_reason,
    summary_opening,
    target_of,
    transferred,
    work_so_far,
)
from tools.next_step import FinalText, Nudge, Stop, after_reply, fan_in
from tools.registry import AgentProfile, Registry


@dataclass
class _Seat:
    """The agent the Claude loop runs as now: a handoff replaces it for the rest of the black box."""

    agent: AgentProfile
    tools: BlackBoxTools
    model: str

    @property
    def system(self) -> str:
        return instructions_for(self.agent.instructions, self.agent.output_schema)


class ClaudeAgentEngine:
    """`AgentEngine` for `anthropic:` models; the SDK's retries stay off, Temporal retries the whole agent."""

    def __init__(self, provider: AnthropicProvider, registry: Registry) -> None:
        self._provider = provider
        self._registry = registry

    async def run(self, run: EngineRun) -> InvokeAgentResult:
        """Alternate inference and in-process tool calls until the agent answers or hits `max_turns`."""
        seat = await _seat(run.agent, run.tools, run.model, run.roster)
        return await _ClaudeLoop(self._provider, run, seat).run()


class _ClaudeLoop:
    """One Claude black-box run: the seat, the conversation, this attempt's breaker counts, the corrections sent."""

    def __init__(self, provider: AnthropicProvider, run: EngineRun, seat: _Seat) -> None:
        self._provider = provider
        self._run = run
        self._ledger = run.ledger
        self._seat = seat
        self._conversation = Conversation.start(run.request.prompt)
        self._corrections = 0
        self._guard = CircuitBreakers(run.agent.guardrails)  # this attempt's counts (a resumed one starts afresh)

    async def run(self) -> InvokeAgentResult:
        if (stopped := await self._resume()) is not None:
            return stopped
        ledger = self._ledger
        while ledger.turns < self._run.max_turns:
            # Within the branch's allowance: its input counted first, the output allowed what remains after it.
            fit = await ledger.fit_turn(self._estimate, self._run.request.max_output_tokens)
            if fit.refused is not None:
                return ledger.result(None, stopped=fit.refused)
            response = await self._reply(fit.output_tokens)
            if (ended := await self._act_on(response.text, response.tool_calls)) is not None:
                return ended
        return ledger.out_of_turns(self._run.max_turns)

    async def _act_on(self, text: str, calls: list[ToolCall]) -> InvokeAgentResult | None:
        """What a reply leads to: the result when the agent is done (answered, or a breaker stopped it); None
        when it goes on (a nudge or a correction was added, or its tools ran)."""
        step = after_reply(self._guard, self._seat.tools.executor.registry, self._seat.agent, text, calls)
        if isinstance(step, Stop):
            return self._ledger.tripped(step)
        if isinstance(step, Nudge):
            self._conversation.add_user_text(step.message)
        elif isinstance(step, FinalText):
            return self._judged(step.text)
        elif (stopped := await self._round(step.calls)) is not None:
            return stopped
        else:
            await self._checkpoint()  # the tools have run
        return None

    def _judged(self, text: str) -> InvokeAgentResult | None:
        """The result when the answer stands; None when it went back to the model with a correction."""
        agent = self._seat.agent
        verdict = judge_answer(text, agent.output_schema, agent.name, self._corrections)
        if isinstance(verdict, Accepted):
            return self._ledger.result(verdict.output)
        if isinstance(verdict, Rejected):
            raise AgentOutputInvalid(verdict.message)
        self._corrections += 1
        self._conversation.add_user_text(verdict.message)
        return None

    def _request(self) -> dict[str, Any]:
        """The next Messages request as the provider takes it: the seat's model, prompt and tools, the conversation."""
        seat = self._seat
        return {
            "model": seat.model,
            "system": seat.system,
            "conversation": self._conversation,
            "tools": seat.tools.definitions,
        }

    async def _estimate(self) -> int:
        return await count_input_tokens(self._provider, **self._request())

    async def _reply(self, max_tokens: int) -> LlmResponse:
        """One model call, counted, recorded in the conversation and checkpointed (the reply is paid for)."""
        response = await self._provider.complete(**self._request(), max_tokens=max_tokens)
        asked = ", ".join(c.name for c in response.tool_calls)
        usage = response.usage
        self._ledger.record_llm(usage.input_tokens, usage.output_tokens, f"asked for {asked}" if asked else "answered")
        self._conversation.add_assistant_turn(response.text, response.tool_calls)
        await self._checkpoint()
        return response

    async def _resume(self) -> InvokeAgentResult | None:
        """Go on from an earlier attempt's checkpoint, as the agent that had the conversation then; the round the
        crash cut off runs again with the same call ids, and a reply it cut off before it was acted on is acted on
        now (not asked for again). The result when that ends the agent (an answer, a breaker), else None."""
        checkpoints, roster = self._run.checkpoints, self._run.roster
        restored = await checkpoints.restore() if checkpoints is not None else None
        if restored is None or restored.conversation is None:
            return None
        self._conversation, self._corrections = restored.conversation, restored.corrections
        handed_to = roster is not None and restored.agent not in (None, self._run.agent.name)
        restored.carry_into(self._ledger, handed_to=handed_to)
        if roster is not None and handed_to and restored.agent is not None:
            self._seat = await _seat_after(self._seat, (await roster.agent(restored.agent)).profile, roster)
            self._ledger.model = self._seat.model
        await self._checkpoint()  # carried on to a further retry
        activity.logger.info("resuming agent %s at turn %d", self._seat.agent.name, restored.turns)
        if cut_off := pending_calls(self._conversation):
            calls = [ToolCall(id=b.id, name=b.name, arguments=b.arguments) for b in cut_off]
            if (stopped := await self._round(calls)) is not None:
                return stopped
            await self._checkpoint()
        elif (answer := unacted_answer(self._conversation)) is not None:
            return await self._act_on(answer, [])  # the reply the crash cut off before it was acted on
        return None

    async def _round(self, calls: list[ToolCall]) -> InvokeAgentResult | None:
        """Run one reply's calls in order (at most the agent's limit: tools/next_step.py `fan_in`), each checked by
        the breakers first; a handoff switches the seat and the calls after it are answered unrun. The result when
        a breaker stopped the agent, else None."""
        runnable, refused = fan_in(self._seat.agent, calls)
        if refused:
            record_guardrail_rejection(activity_meter(), reason="too_many_tool_calls")
        outcomes: list[ToolOutcome] = []
        for i, call in enumerate(runnable):
            target = target_of(call.name) if self._run.roster is not None else None
            if target is not None:
                switched = await self._hand_off(call, target)
                if isinstance(switched, ToolOutcome):  # refused: the model reads why and goes on
                    outcomes.append(switched)
                    continue
                if switched is not None:
                    self._conversation = switched  # the next agent starts afresh: the rest of this reply is left
                    return None
                outcomes.append(ToolOutcome(tool_call_id=call.id, name=call.name, content=transferred(target)))
                outcomes += [_error(c, handed_on(target)) for c in runnable[i + 1 :]]
                break
            if rule := self._guard.call(call):
                return self._ledger.tripped(Stop(rule))
            outcome = await self._seat.tools.run(call)
            outcomes.append(screened_outcome(outcome, self._guard.policy))
            if rule := self._guard.outcome(outcome.is_error):
                return self._ledger.tripped(Stop(rule))
        self._conversation.add_tool_results(outcomes + refused)
        return None

    async def _hand_off(self, call: ToolCall, target: str) -> ToolOutcome | Conversation | None:
        """Switch to `target`, or an error result for the model when it may not; then the conversation the next
        agent starts with: None for the same one (`full`), or a fresh one (`summary`, `none`)."""
        source, roster = self._seat.agent, self._run.roster
        assert roster is not None  # only a black box with a roster has transfer tools
        pinned = roster.reachable(target)
        next_agent = (await roster.agent(target)).profile if pinned and target in source.handoffs else None
        problem = black_box_refusal(
            source,
            target,
            pinned=pinned,
            target_model=(next_agent.model or self._seat.model) if next_agent is not None else None,
            engine="anthropic",
        )
        if problem is not None or next_agent is None:
            return _error(call, problem or "")
        reason = handoff_reason(call.arguments)
        record_handoff(self._ledger, source, target, reason)
        self._seat = await _seat_after(self._seat, next_agent, roster)
        self._ledger.model = self._seat.model
        self._corrections = 0  # the next agent gets its own output corrections
        if source.handoff_context == "full":
            return None
        opening = self._run.request.prompt
        if source.handoff_context == "summary":
            work, last_text = work_so_far(self._conversation)
            opening = summary_opening(opening, source.name, reason, work, last_text)
        return Conversation.start(opening)

    async def _checkpoint(self) -> None:
        """Record how far the agent got, durably: the next heartbeat carries it to a retried attempt."""
        if self._run.checkpoints is not None:
            await self._run.checkpoints.save(
                self._ledger, conversation=self._conversation, corrections=self._corrections
            )


def _error(call: ToolCall, content: str) -> ToolOutcome:
    return ToolOutcome(tool_call_id=call.id, name=call.name, content=content, is_error=True)


async def _seat(agent: AgentProfile, tools: BlackBoxTools, model: str, roster: HandoffRoster | None) -> _Seat:
    transfers = await roster.transfer_tools(agent) if roster is not None else []
    return _Seat(agent, dataclasses.replace(tools, definitions=[*tools.definitions, *transfers]), model)


async def _seat_after(seat: _Seat, agent: AgentProfile, roster: HandoffRoster) -> _Seat:
    """The seat of `agent` after a handoff: its instructions, tools, read-only policy and model."""
    definitions = (await roster.agent(agent.name)).definitions
    tools = dataclasses.replace(seat.tools, agent=agent, definitions=definitions)
    return await _seat(agent, tools, agent.model or seat.model, roster)
