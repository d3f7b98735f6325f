"""An agent's `output_schema` in the Agents SDK: its output type, judged by tools/final_answer.py as in every loop.

Where the SDK forces a difference: it checks the final answer itself (`validate_json`) and ends `Runner.run` with a
`ModelBehaviorError` when the answer does not pass, with no way to send a correction within that run. So the
engine starts `Runner.run` again from the conversation so far plus the correction (`retry_input`); the schema
travels as the SDK's output type (structured output), not in the instructions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from agents import AgentOutputSchemaBase, ItemHelpers, ModelBehaviorError, TResponseInputItem
from agents.strict_schema import ensure_strict_json_schema

from models.errors import AgentOutputInvalid
from tools.final_answer import Accepted, Rejected, SendBack, judge_answer


@dataclass
class Corrections:
    """Output corrections sent to the agent that has the conversation; a handoff starts the count afresh."""

    count: int = 0


class JsonSchemaOutput(AgentOutputSchemaBase):
    """The agent's `output_schema` as the SDK's output type: judged by `judge_answer`, strict only where it can be."""

    def __init__(self, agent: str, schema: dict[str, Any], corrections: Corrections | None = None) -> None:
        self._agent = agent
        self._schema = schema
        self._strict = _strict_compatible(schema)
        self._corrections = corrections if corrections is not None else Corrections()
        self.sent_back: tuple[str, SendBack] | None = None
        """The last answer that did not validate, and the correction it gets."""

    def is_plain_text(self) -> bool:
        return False

    def name(self) -> str:
        return str(self._schema.get("title") or f"{self._agent}_output")

    def json_schema(self) -> dict[str, Any]:
        return self._schema

    def is_strict_json_schema(self) -> bool:
        return self._strict

    def validate_json(self, json_str: str) -> Any:
        verdict = judge_answer(json_str, self._schema, self._agent, self._corrections.count)
        if isinstance(verdict, Accepted):
            return verdict.output
        if isinstance(verdict, Rejected):
            raise AgentOutputInvalid(verdict.message)
        self.sent_back = (json_str, verdict)
        raise ModelBehaviorError(f"output does not match the output_schema: {verdict.problems}")


def _strict_compatible(schema: dict[str, Any]) -> bool:
    """Whether OpenAI's strict mode accepts `schema` unchanged (every property required, no extra keys)."""
    try:
        return ensure_strict_json_schema(json.loads(json.dumps(schema))) == schema
    except Exception:
        return False


def retry_input(prompt: str, exc: ModelBehaviorError, rejected: str, message: str) -> list[TResponseInputItem]:
    """The conversation so far (what the SDK recorded, else the prompt), the rejected answer and the correction."""
    data = exc.run_data
    items: list[TResponseInputItem] = ItemHelpers.input_to_new_input_list(data.input if data else prompt)
    if data is not None:
        items += [item.to_input_item() for item in data.new_items]
    items.append({"role": "assistant", "content": rejected})
    items.append({"role": "user", "content": message})
    return items
