"""Condensing the older turns of a long conversation into one summary, so the model's context stays bounded.

Pure functions over messages; `call_llm` (task `summarise`) does the model call and the storing.
The prompt stays verbatim, the last few messages stay verbatim, and everything between becomes a
summary appended to the first user message. The originals remain in the store (`summary_of`).
"""

from __future__ import annotations

import json

from activities.conversation_store import truncate_for_model
from models.conversation import Message, TextBlock, ToolResultBlock, ToolUseBlock

SUMMARY_INSTRUCTIONS = (
    "You condense the earlier part of an AI assistant's work on a task into a summary it will continue from. "
    "Keep every fact, number, decision, tool result and open question the assistant still needs; drop "
    "repetition. Write plain prose or a short list, no preamble."
)
SUMMARY_HEADING = "Summary of the earlier steps (condensed; the full record is kept):"
TRANSCRIPT_OUTPUT_CHARS = 2000
"""Each tool output in the summariser's transcript is cut to this, so the transcript itself stays bounded."""


def split_point(messages: list[Message], keep: int) -> int:
    """Index of the first message kept verbatim, or 0 when there is nothing worth condensing.

    The kept part starts with an assistant turn, so every tool result in it follows its tool call
    and the new conversation still alternates user/assistant after the summarised first message.
    """
    cut = len(messages) - keep
    while cut > 1 and messages[cut].role != "assistant":
        cut -= 1
    return cut if cut >= 3 else 0


def transcript(messages: list[Message]) -> str:
    """The messages as text the summariser can read; long tool outputs cut."""
    lines: list[str] = []
    for message in messages:
        for block in message.content:
            if isinstance(block, TextBlock):
                lines.append(f"{message.role}: {block.text}")
            elif isinstance(block, ToolUseBlock):
                lines.append(f"assistant called {block.name}({json.dumps(block.arguments, sort_keys=True)})")
            elif isinstance(block, ToolResultBlock):
                mark = "error" if block.is_error else "result"
                lines.append(f"tool {mark}: {truncate_for_model(block.content, TRANSCRIPT_OUTPUT_CHARS)}")
    return "Condense this work log:\n\n" + "\n\n".join(lines)


def summarised_opening(first: Message, summary: str) -> Message:
    """The prompt as the user gave it, followed by the summary (replacing any earlier summary)."""
    prompt = next((b for b in first.content if isinstance(b, TextBlock)), TextBlock(text=""))
    return Message(role="user", content=[prompt, TextBlock(text=f"{SUMMARY_HEADING}\n{summary}")])
