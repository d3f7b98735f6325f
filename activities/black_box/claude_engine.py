"""The Claude tool loop, run whole inside one activity: `AnthropicProvider.complete` plus registry tools."""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ValidationError

from activities.black_box.engine import BlackBoxTools
from activities.black_box.progress import AgentProgress
from activities.providers.anthropic_provider import AnthropicProvider
from models.blackbox import InvokeAgentRequest, InvokeAgentResult
from models.conversation import Conversation
from tools.output_check import check_output
from tools.registry import AgentProfile, Registry

_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


def parse_structured(text: str, output: type[BaseModel]) -> tuple[dict[str, Any] | None, str | None]:
    """(validated JSON object, None) or (None, a correction for the model)."""
    raw = text.strip()
    if match := _FENCE.match(raw):
        raw = match.group(1)
    try:
        return output.model_validate_json(raw).model_dump(mode="json"), None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'answer'}: {e['msg']}" for e in exc.errors())
        schema = json.dumps(output.model_json_schema())
        return (
            None,
            f"Your answer is not valid {output.__name__} JSON ({problems}). Reply with JSON only, matching: {schema}",
        )


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
        schema = agent.output_schema or (agent.output.model_json_schema() if agent.output else None)
        system = agent.instructions
        if schema is not None:
            system += f"\n\nYour final answer must be JSON only, matching this schema: {json.dumps(schema)}"
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
                parsed, correction = check_output(response.text, schema)
                if correction is None:
                    return progress.result(parsed)
                conversation.add_user_text(correction or "")
                continue
            conversation.add_tool_results([await tools.run(call) for call in response.tool_calls])
        return progress.result(None, stopped=f"turn ceiling reached: {progress.turns} of max_turns {max_turns}")
