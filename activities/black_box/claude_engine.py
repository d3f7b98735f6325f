"""The Claude tool loop, run whole inside one activity: `AnthropicProvider.complete` plus registry tools."""

from __future__ import annotations

from temporalio import activity

from activities.black_box.checkpoint import Checkpoints, pending_calls
from activities.black_box.engine import BlackBoxTools
from activities.black_box.progress import AgentProgress
from activities.providers.anthropic_provider import AnthropicProvider, count_input_tokens
from models.blackbox import InvokeAgentRequest, InvokeAgentResult
from models.conversation import Conversation, ToolCall
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
            await self._checkpoint(checkpoints, progress, conversation, corrections)  # carried to a further retry
            activity.logger.info("resuming agent %s at turn %d", agent.name, restored.turns)
            if cut_off := pending_calls(conversation):  # the round the crash cut off runs again, same call ids
                calls = [ToolCall(id=b.id, name=b.name, arguments=b.arguments) for b in cut_off]
                conversation.add_tool_results([await tools.run(call) for call in calls])
                await self._checkpoint(checkpoints, progress, conversation, corrections)

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
            conversation.add_tool_results([await tools.run(call) for call in response.tool_calls])
            await self._checkpoint(checkpoints, progress, conversation, corrections)  # the tools have run
        return progress.result(None, stopped=f"turn ceiling reached: {progress.turns} of max_turns {max_turns}")

    @staticmethod
    async def _checkpoint(
        checkpoints: Checkpoints | None, progress: AgentProgress, conversation: Conversation, corrections: int
    ) -> None:
        """Record how far the agent got, durably: the next heartbeat carries it to a retried attempt."""
        if checkpoints is None:
            return
        progress.resume = await checkpoints.save(conversation, turns=progress.turns, corrections=corrections)
        progress.heartbeat()
