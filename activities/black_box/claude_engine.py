"""The Claude tool loop, run whole inside one activity: `AnthropicProvider.complete` plus registry tools."""

from __future__ import annotations

from temporalio import activity

from activities.black_box.checkpoint import Checkpoints, pending_calls
from activities.black_box.engine import BlackBoxTools, screened
from activities.black_box.progress import AgentProgress
from activities.providers.anthropic_provider import AnthropicProvider, count_input_tokens
from models.blackbox import InvokeAgentRequest, InvokeAgentResult
from models.conversation import Conversation, ToolCall, ToolOutcome
from tools.guardrails import CircuitBreakers
from tools.output_check import CORRECTIONS, check_output, correction, output_invalid, schema_instruction
from tools.registry import AgentProfile, Registry


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
    ) -> InvokeAgentResult:
        """Alternate inference and in-process tool calls until the agent answers or hits `max_turns`."""
        schema = agent.output_schema
        system = agent.instructions + (schema_instruction(schema) if schema is not None else "")
        corrections = 0
        conversation = Conversation.start(request.prompt)
        restored = await checkpoints.restore() if checkpoints is not None else None
        if restored is not None:  # an earlier attempt got this far: its turns are not paid for again
            conversation, corrections = restored.conversation, restored.corrections
            progress.turns = restored.turns
            if restored.usage is not None and restored.usage.llm_calls > progress.usage.llm_calls:
                progress.usage = restored.usage  # the checkpoint is newer than the last heartbeat that got through
            await self._checkpoint(checkpoints, progress, conversation, corrections)  # carried to a further retry
            activity.logger.info("resuming agent %s at turn %d", agent.name, restored.turns)
            if cut_off := pending_calls(conversation):  # the round the crash cut off runs again, same call ids
                calls = [ToolCall(id=b.id, name=b.name, arguments=b.arguments) for b in cut_off]
                conversation.add_tool_results([self._screened(await tools.run(call), agent) for call in calls])
                await self._checkpoint(checkpoints, progress, conversation, corrections)

        guard = CircuitBreakers(agent.guardrails)  # counts of this attempt (a resumed one starts them afresh)
        while progress.turns < max_turns:
            # Within the branch's allowance: its input counted first, the output allowed what remains after it.
            estimate = (
                await count_input_tokens(
                    self._provider, model=model, system=system, conversation=conversation, tools=tools.definitions
                )
                if progress.allowance is not None
                else 0
            )
            fit = progress.fit_next_call(estimate, request.max_output_tokens)
            if fit.refused is not None:
                return progress.result(None, stopped=fit.refused)
            response = await self._provider.complete(
                model=model,
                system=system,
                conversation=conversation,
                tools=tools.definitions,
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
                if schema is None:
                    return progress.result(response.text)
                parsed, problems = check_output(response.text, schema)
                if problems is None:
                    return progress.result(parsed)
                if corrections >= CORRECTIONS:
                    raise output_invalid(agent.name, problems)
                corrections += 1
                conversation.add_user_text(correction(problems, schema))
                continue
            outcomes = []
            for call in response.tool_calls:
                if rule := guard.call(call.name, call.arguments):
                    return progress.result(None, stopped=rule, rule=rule.split(":", 1)[0])
                outcome = await tools.run(call)
                outcomes.append(self._screened(outcome, agent))
                if rule := guard.outcome(outcome.is_error):
                    return progress.result(None, stopped=rule, rule=rule.split(":", 1)[0])
            conversation.add_tool_results(outcomes)
            await self._checkpoint(checkpoints, progress, conversation, corrections)  # the tools have run
        return progress.result(None, stopped=f"turn ceiling reached: {progress.turns} of max_turns {max_turns}")

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
            conversation, turns=progress.turns, corrections=corrections, usage=progress.usage
        )
        progress.heartbeat()
