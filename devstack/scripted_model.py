"""An offline stand-in for Claude's judgement, for the demo and load tests: reacts to the conversation.

It is deliberately simple: find arithmetic in the prompt, calculate it, save a note when asked,
then answer. Tests that need exact control use scripts instead.
"""

from __future__ import annotations

import re
from typing import Any

from devstack.fake_anthropic import Reply

_EXPRESSION = re.compile(r"\(?\d[\d.,]*(?:\s*[-+*/%]\s*\(?\d[\d.,]*\)?)+")
_WANTS_NOTE = re.compile(r"\b(note|save|write down|remember)\b", re.IGNORECASE)


def _text_of(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    return " ".join(b.get("text", "") for b in content if b.get("type") == "text")


def _tool_uses(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [b for m in messages if m["role"] == "assistant" for b in m["content"] if b.get("type") == "tool_use"]


def _results(messages: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        b["tool_use_id"]: b for m in messages if m["role"] == "user" and isinstance(m["content"], list)
        for b in m["content"] if b.get("type") == "tool_result"
    }


def respond(body: dict[str, Any]) -> Reply:
    """The next turn for a Messages API request body."""
    messages = body["messages"]
    prompt = _text_of(messages[0])
    uses, results = _tool_uses(messages), _results(messages)
    calc = next((u for u in uses if u["name"] == "calculator"), None)
    note = next((u for u in uses if u["name"] == "write_note"), None)
    if calc is None:
        match = _EXPRESSION.search(prompt)
        if match is None:
            return Reply(text="(scripted offline model) I can calculate and save notes. Try: "
                              "'What is 6000 * 0.2? Then save a note with the answer.'")
        expression = match.group(0).replace(",", "")
        return Reply(text=f"Let me calculate {expression}.", tool_calls=[("calculator", {"expression": expression})])
    calc_result = results.get(calc["id"], {}).get("content", "?")
    answer = f"{calc['input']['expression']} = {calc_result}"
    if note is None and _WANTS_NOTE.search(prompt):
        return Reply(text="I'll save that as a note.", tool_calls=[("write_note", {"title": "Calculation", "body": answer})])
    if note is not None:
        outcome = results.get(note["id"], {})
        if outcome.get("is_error"):
            return Reply(text=f"{answer}. I did not save a note: {outcome.get('content')}")
        return Reply(text=f"{answer}. {outcome.get('content', 'Saved.')}")
    return Reply(text=f"{answer}.")
