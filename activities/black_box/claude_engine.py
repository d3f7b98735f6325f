"""The Claude tool loop, run whole inside one activity: `AnthropicProvider.complete` plus registry tools."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from temporalio import activity

from activities.black_box.checkpoint import Checkpoints, pending_calls
from activities.black_box.engine import BlackBoxTools, screened
from activities.black_box.handoffs import HandoffRoster, record_handoff, refusal, summary_opening, target_of
from activities.black_box.progress import AgentProgress
from activities.providers.anthropic_provider import AnthropicProvider, count_input_tokens
from models.blackbox import InvokeAgentRequest, InvokeAgentResult
from models.conversation import Conversation, ToolCall, ToolOutcome
from tools.guardrails import CircuitBreakers
from tools.output_check import CORRECTIONS, check_output, correction, output_invalid, schema_instruction
from tools.registry import AgentProfile, Registry


@dataclass
class _Seat:
    """The agent the Claude loop runs as now: a handoff replaces it for the rest of the black box."""

    agent: AgentProfile
    tools: BlackBoxTools
    model: str

    @property
    def system(self) -> str:
        schema = self.agent.output_schema
        return self.agent.instructions + (schema_instruction(schema) if schema is not None else "")


class ClaudeAgentEngine:
    """`AgentEngine` for `anthropic:` models; the SDK's retries stay off, Temporal retries the whole agent."""

    def __init__(self, provider: AnthropicProvider, registry: Registry) -> None:
        self._provider = provider
        self._registry = registry

    async def run(
        self,
        *,
        agent: AgentProfile,
        request: InvokeAgentRequest,
        model: str,
        max_turns: int,
        progress: AgentProgress,
        tools: BlackBoxTools,
        checkpoints: Checkpoints | None = None,
        roster: HandoffRoster | None = None,
    ) -> InvokeAgentResult:
        """Alternate inference and in-process tool calls until the agent answers or hits `max_turns`."""
        seat = await self._seat(agent, tools, model, roster)
        corrections = 0
        conversation = Conversation.start(request.prompt)
        guard = CircuitBreakers(agent.guardrails)  # counts of this attempt (a resumed one starts them afresh)
        restored = await checkpoints.restore() if checkpoints is not None else None
        if restored is not None:  # an earlier attempt got this far: its turns are not paid for again
            conversation, corrections = restored.conversation, restored.corrections
            progress.turns = restored.turns
            if restored.usage is not None and restored.usage.llm_calls > progress.usage.llm_calls:
                progress.usage = restored.usage  # the checkpoint is newer than the last heartbeat that got through
            if restored.agent is not None and restored.agent != agent.name and roster is not None:
                # It had handed off: resume as the agent that had the conversation, not the one first asked.
                progress.handoffs, progress.active = list(restored.handoffs), restored.agent
                seat = await self._seat_after(seat, (await roster.agent(restored.agent)).profile, roster)
                progress.model = seat.model
            await self._checkpoint(checkpoints, progress, conversation, corrections)  # carried to a further retry
            activity.logger.info("resuming agent %s at turn %d", seat.agent.name, restored.turns)
            if cut_off := pending_calls(conversation):  # the round the crash cut off runs again, same call ids
                calls = [ToolCall(id=b.id, name=b.name, arguments=b.arguments) for b in cut_off]
                ran = await self._round(calls, seat, conversation, request, progress, guard, roster)
                if isinstance(ran, InvokeAgentResult):
                    return ran
                seat, conversation = ran
                await self._checkpoint(checkpoints, progress, conversation, corrections)

        while progress.turns < max_turns:
            # Within the branch's allowance: its input counted first, the output allowed what remains after it.
            estimate = (
                await count_input_tokens(
                    self._provider,
                    model=seat.model,
                    system=seat.system,
                    conversation=conversation,
                    tools=seat.tools.definitions,
                )
                if progress.allowance is not None
                else 0
            )
            fit = progress.fit_next_call(estimate, request.max_output_tokens)
            if fit.refused is not None:
                return progress.result(None, stopped=fit.refused)
            response = await self._provider.complete(
                model=seat.model,
                system=seat.system,
                conversation=conversation,
                tools=seat.tools.definitions,
                max_tokens=fit.output_tokens,
            )
            asked = ", ".join(c.name for c in response.tool_calls)
            progress.record_llm(
                response.usage.input_tokens, response.usage.output_tokens, f"asked for {asked}" if asked else "answered"
            )
            conversation.add_assistant_turn(response.text, response.tool_calls)
            await self._checkpoint(checkpoints, progress, conversation, corrections)  # the reply is paid for
            calls_asked = [(c.name, c.arguments) for c in response.tool_calls]
            if rule := guard.reply(text=response.text, calls=calls_asked, refused=0):
                return progress.result(None, stopped=rule, rule=rule.split(":", 1)[0])
            if not response.tool_calls:
                schema = seat.agent.output_schema
                if schema is None:
                    return progress.result(response.text)
                parsed, problems = check_output(response.text, schema, seat.agent.name)
                if problems is None:
                    return progress.result(parsed)
                if corrections >= CORRECTIONS:
                    raise output_invalid(seat.agent.name, problems)
                corrections += 1
                conversation.add_user_text(correction(problems, schema))
                continue
            ran = await self._round(response.tool_calls, seat, conversation, request, progress, guard, roster)
            if isinstance(ran, InvokeAgentResult):
                return ran
            if ran[0] is not seat:
                corrections = 0  # the next agent gets its own output corrections
            seat, conversation = ran
            await self._checkpoint(checkpoints, progress, conversation, corrections)  # the tools have run
        return progress.result(None, stopped=f"turn ceiling reached: {progress.turns} of max_turns {max_turns}")

    async def _round(
        self,
        calls: list[ToolCall],
        seat: _Seat,
        conversation: Conversation,
        request: InvokeAgentRequest,
        progress: AgentProgress,
        guard: CircuitBreakers,
        roster: HandoffRoster | None,
    ) -> tuple[_Seat, Conversation] | InvokeAgentResult:
        """Run one reply's tool calls in order; a handoff switches the seat and answers the calls after it unrun.

        Returns the seat and conversation to go on with (a fresh conversation when the handoff's context is
        `summary` or `none`), or the result when a breaker stopped the agent.
        """
        outcomes: list[ToolOutcome] = []
        for i, call in enumerate(calls):
            target = target_of(call.name) if roster is not None else None
            if target is not None and roster is not None:
                switched = await self._hand_off(call, target, seat, conversation, request, progress, roster)
                if isinstance(switched, ToolOutcome):  # refused: the model reads why and goes on
                    outcomes.append(switched)
                    continue
                next_seat, fresh = switched
                if fresh is not None:
                    return next_seat, fresh  # the next agent starts afresh: the rest of this reply is left
                outcomes.append(ToolOutcome(tool_call_id=call.id, name=call.name, content=f"Transferred to {target}."))
                unrun = f"Not run: the conversation was handed to {target}."
                outcomes += [
                    ToolOutcome(tool_call_id=c.id, name=c.name, content=unrun, is_error=True) for c in calls[i + 1 :]
                ]
                conversation.add_tool_results(outcomes)
                return next_seat, conversation
            if rule := guard.call(call.name, call.arguments):
                return progress.result(None, stopped=rule, rule=rule.split(":", 1)[0])
            outcome = await seat.tools.run(call)
            outcomes.append(self._screened(outcome, seat.agent))
            if rule := guard.outcome(outcome.is_error):
                return progress.result(None, stopped=rule, rule=rule.split(":", 1)[0])
        conversation.add_tool_results(outcomes)
        return seat, conversation

    async def _hand_off(
        self,
        call: ToolCall,
        target: str,
        seat: _Seat,
        conversation: Conversation,
        request: InvokeAgentRequest,
        progress: AgentProgress,
        roster: HandoffRoster,
    ) -> ToolOutcome | tuple[_Seat, Conversation | None]:
        """Switch to `target` (an error result for the model when it may not); the next agent sees what the
        source's `handoff_context` says: the same conversation (None here), or a fresh one."""
        source = seat.agent
        problem = refusal(source, target)
        if problem is None and not roster.reachable(target):
            problem = f"Error: agent {target!r} was not pinned for this black box."
        next_agent = (await roster.agent(target)).profile if problem is None else None
        if next_agent is not None and (next_agent.model or seat.model).split(":", 1)[0] != "anthropic":
            problem = (
                f"Error: agent {target!r} runs on {next_agent.model!r}; this black box runs on Claude and cannot "
                "hand off to another provider's agent."
            )
        if problem is not None or next_agent is None:
            return ToolOutcome(tool_call_id=call.id, name=call.name, content=problem or "", is_error=True)
        reason = str(call.arguments.get("reason") or "no reason given")
        record_handoff(progress, source, target, reason)
        next_seat = await self._seat_after(seat, next_agent, roster)
        progress.model = next_seat.model
        if source.handoff_context == "full":
            return next_seat, None
        opening = request.prompt
        if source.handoff_context == "summary":
            opening = summary_opening(request.prompt, source.name, reason, conversation)
        return next_seat, Conversation.start(opening)

    @staticmethod
    async def _seat(agent: AgentProfile, tools: BlackBoxTools, model: str, roster: HandoffRoster | None) -> _Seat:
        transfers = await roster.transfer_tools(agent) if roster is not None else []
        return _Seat(agent, dataclasses.replace(tools, definitions=[*tools.definitions, *transfers]), model)

    async def _seat_after(self, seat: _Seat, agent: AgentProfile, roster: HandoffRoster) -> _Seat:
        """The seat of `agent` after a handoff: its instructions, tools, read-only policy and model."""
        definitions = (await roster.agent(agent.name)).definitions
        tools = dataclasses.replace(seat.tools, agent=agent, definitions=definitions)
        return await self._seat(agent, tools, agent.model or seat.model, roster)

    @staticmethod
    def _screened(outcome: ToolOutcome, agent: AgentProfile) -> ToolOutcome:
        """The outcome as the model is shown it: marked or withheld when it reads like instructions."""
        content, flagged = screened(outcome.content, agent.guardrails)
        return outcome.model_copy(update={"content": content}) if flagged else outcome

    @staticmethod
    async def _checkpoint(
        checkpoints: Checkpoints | None, progress: AgentProgress, conversation: Conversation, corrections: int
    ) -> None:
        """Record how far the agent got, durably: the next heartbeat carries it to a retried attempt."""
        if checkpoints is None:
            return
        progress.resume = await checkpoints.save(
            conversation,
            turns=progress.turns,
            corrections=corrections,
            usage=progress.usage,
            agent=progress.active or None,
            handoffs=progress.handoffs,
        )
        progress.heartbeat()
