"""One model request as a scripted model sees it, whichever provider's wire format it arrived in.

The fakes (`FakeAnthropic`, `FakeOpenAI`) hand a responder the raw request body. `ModelCall` reads
the Messages API's shape; an OpenAI request (Responses `input` items or Chat Completions `messages`)
is first rewritten into that shape, so every scripted responder, the demo's included, is written once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class OfferedTool:
    """A tool the request offers the model: its name and the JSON Schema of its arguments."""

    name: str
    schema: dict[str, Any]


@dataclass
class ModelCall:
    """What a scripted model decides on: who asks (system prompt), what (prompt), with what, and how far along."""

    body: dict[str, Any]
    """The request in the Messages API's shape (`system`, `messages`, `tools`)."""
    system: str = ""
    prompt: str = ""
    """The text of the conversation's first user message: the run's prompt."""
    tools: list[OfferedTool] = field(default_factory=list)
    replies: int = 0
    """How many replies of the model the conversation already holds: the next one is turn `replies + 1`."""
    calls: list[dict[str, Any]] = field(default_factory=list)
    """Every `tool_use` block the model made so far (`id`, `name`, `input`), in order."""
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    """The `tool_result` block answering each tool_use id (`content`, `is_error`)."""

    @classmethod
    def from_anthropic(cls, body: dict[str, Any]) -> ModelCall:
        """A Messages API request body."""
        messages = body.get("messages") or []
        assistant = [m for m in messages if m.get("role") == "assistant"]
        return cls(
            body=body,
            system=text_of(body.get("system") or ""),
            prompt=text_of(messages[0].get("content", "")) if messages else "",
            tools=[OfferedTool(t.get("name", ""), t.get("input_schema") or {}) for t in body.get("tools") or []],
            replies=len(assistant),
            calls=[b for m in assistant for b in _blocks(m) if b.get("type") == "tool_use"],
            results={
                b.get("tool_use_id", ""): b
                for m in messages
                if m.get("role") == "user"
                for b in _blocks(m)
                if b.get("type") == "tool_result"
            },
        )

    @classmethod
    def from_openai(cls, body: dict[str, Any]) -> ModelCall:
        """A Responses (`input`) or Chat Completions (`messages`) request body."""
        return cls.from_anthropic(messages_shape(body))

    def result_text(self, call_id: str) -> tuple[str, bool]:
        """The output a tool call got (text) and whether it was an error; ("", False) while unanswered."""
        block = self.results.get(call_id) or {}
        return text_of(block.get("content", "")), bool(block.get("is_error"))


def text_of(content: Any) -> str:
    """The text of a message's content: a string, or the text of its blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(text_of(b.get("text", "")) for b in content if isinstance(b, dict) and "text" in b)
    return ""


def _blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    return [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []


def messages_shape(body: dict[str, Any]) -> dict[str, Any]:
    """An OpenAI request rewritten as a Messages API request: `system`, alternating `messages`, `tools`."""
    chat = "input" not in body
    items = body.get("messages", []) if chat else body.get("input", [])
    if isinstance(items, str):
        items = [{"role": "user", "content": items}]
    system = [
        text_of(i.get("content")) for i in items if isinstance(i, dict) and i.get("role") in ("system", "developer")
    ]
    messages: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, dict):
            for role, block in _item_blocks(item):
                _append(messages, role, block)
    tools = [_tool(t) for t in body.get("tools") or [] if isinstance(t, dict)]
    return {
        "system": "\n".join([text_of(body.get("instructions") or ""), *system]).strip(),
        "messages": messages,
        "tools": tools,
    }


def _item_blocks(item: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The Messages API blocks one OpenAI input item (or chat message) stands for, each with its role."""
    kind, role = item.get("type"), item.get("role")
    if kind == "function_call":
        return [("assistant", _tool_use(item.get("call_id", ""), item.get("name", ""), item.get("arguments")))]
    if kind == "function_call_output":
        return [
            (
                "user",
                {"type": "tool_result", "tool_use_id": item.get("call_id", ""), "content": text_of(item.get("output"))},
            )
        ]
    if role == "tool":  # Chat Completions' tool result
        return [
            (
                "user",
                {
                    "type": "tool_result",
                    "tool_use_id": item.get("tool_call_id", ""),
                    "content": text_of(item.get("content")),
                },
            )
        ]
    if role not in ("user", "assistant"):
        return []  # system and developer messages are the system prompt; reasoning items carry nothing to act on
    blocks: list[tuple[str, dict[str, Any]]] = []
    if text := text_of(item.get("content")):
        blocks.append((role, {"type": "text", "text": text}))
    for call in item.get("tool_calls") or []:  # Chat Completions' assistant tool calls
        function = call.get("function", {})
        blocks.append(("assistant", _tool_use(call.get("id", ""), function.get("name", ""), function.get("arguments"))))
    return blocks


def _tool_use(call_id: str, name: str, arguments: Any) -> dict[str, Any]:
    try:
        parsed = json.loads(arguments) if isinstance(arguments, str) else arguments or {}
    except json.JSONDecodeError:
        parsed = {}
    return {"type": "tool_use", "id": call_id, "name": name, "input": parsed}


def _append(messages: list[dict[str, Any]], role: str, block: dict[str, Any]) -> None:
    """Add `block`, joining the previous message when it has the same role (the Messages API alternates)."""
    if messages and messages[-1]["role"] == role:
        messages[-1]["content"].append(block)
    else:
        messages.append({"role": role, "content": [block]})


def _tool(tool: dict[str, Any]) -> dict[str, Any]:
    """A Responses function tool, or a Chat Completions one (`function: {...}`), as a Messages API tool."""
    function = tool.get("function", tool)
    return {"name": function.get("name", ""), "input_schema": function.get("parameters") or {}}
