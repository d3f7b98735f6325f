"""The Claude tool loop, run whole inside one activity: `AnthropicProvider.complete` plus registry tools."""

from __future__ import annotations

from activities.black_box.engine import BlackBoxTools
from activities.black_box.progress import AgentProgress
from activities.providers.anthropic_provider import AnthropicProvider
from models.blackbox import InvokeAgentRequest, InvokeAgentResult
from models.conversation import Conversation
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
    ) -> InvokeAgentResult:
        """Alternate inference and in-process tool calls until the agent answers or hits `max_turns`."""
        schema = agent.output_schema
        system = agent.instructions + (schema_instruction(schema) if schema is not None else "")
        corrections = 0
        conversation = Conversation.start(request.prompt)
        while progress.turns < max_turns:
            response = await self._provider.complete(
                model=model,
                system=system,
                conversation=conversation,
                tools=tools.definitions,
                max_tokens=request.max_output_tokens,
            )
            asked = ", ".join(c.name for c in response.tool_calls)
            progress.record_llm(
                response.usage.input_tokens, response.usage.output_tokens, f"asked for {asked}" if asked else "answered"
            )
            conversation.add_assistant_turn(response.text, response.tool_calls)
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
        return progress.result(None, stopped=f"turn ceiling reached: {progress.turns} of max_turns {max_turns}")
