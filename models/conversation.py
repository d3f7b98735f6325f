"""The conversation an agent loop carries from step to step.

Workflows only touch it through `Conversation`'s methods. A conversation started `by_reference`
keeps its messages in the blob store (activities/conversation_store.py): the workflow holds only the key of
the stored chain (`head`) and the few messages added since the last `call_llm` stored them, so
history stays small however long the run (docs/history.md).
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field


class TextBlock(BaseModel):
    """Plain text from the user or the model."""

    type: Literal["text"] = "text"
    text: str


class ToolUseBlock(BaseModel):
    """The model asking for a tool call."""

    type: Literal["tool_use"] = "tool_use"
    id: str
    name: str
    arguments: dict[str, Any]


class ToolResultBlock(BaseModel):
    """What a tool call produced, sent back to the model."""

    type: Literal["tool_result"] = "tool_result"
    tool_use_id: str
    content: str
    is_error: bool = False
    content_ref: str | None = None
    """When set, `content` is a preview and the full output is this blob; the model is shown it truncated."""


Block = Annotated[TextBlock | ToolUseBlock | ToolResultBlock, Field(discriminator="type")]


class Message(BaseModel):
    """One turn: provider-neutral, translated to each provider's wire format by its adapter."""

    role: Literal["user", "assistant"]
    content: list[Block]


class ToolCall(BaseModel):
    """A tool call the model asked for."""

    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    unreadable: str | None = None
    """The model's argument text when it was not a JSON object: the call is refused (`arguments_problem`), never
    run with arguments guessed at."""

    @classmethod
    def from_json(cls, id: str, name: str, raw: str | None) -> ToolCall:
        """A call whose arguments came as JSON text (OpenAI function calls); text that is not an object is kept."""
        if arguments_problem(raw) is not None:
            return cls(id=id, name=name, unreadable=raw or "")
        return cls(id=id, name=name, arguments=json.loads(raw or "{}"))

    @property
    def problem(self) -> str | None:
        """Why the arguments could not be read (`arguments_problem`), or None when they were."""
        if self.unreadable is None:
            return None
        return arguments_problem(self.unreadable) or "the arguments could not be read"


def arguments_problem(raw: str | None) -> str | None:
    """Why tool-call argument text is not a JSON object, or None when it is (empty text is no arguments: `{}`)."""
    try:
        parsed = json.loads(raw or "{}")
    except json.JSONDecodeError as exc:
        return f"the arguments are not JSON ({exc.msg} at column {exc.colno})"
    except RecursionError:
        return "the arguments are JSON nested too deeply to read"
    if not isinstance(parsed, dict):
        return f"the arguments are a JSON {_JSON_TYPES.get(type(parsed), 'value')}, not an object of named arguments"
    return None


_JSON_TYPES: dict[type, str] = {
    list: "array",
    str: "string",
    int: "number",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


class ToolOutcome(BaseModel):
    """The result of one tool call as the model will see it."""

    tool_call_id: str
    name: str
    content: str
    is_error: bool = False
    content_ref: str | None = None
    """Blob key of the full output when `run_tool` stored it and `content` is only a preview."""


def describe_call(call: ToolCall, limit: int = 120) -> str:
    """`name(arg=value, ...)`, shortened for summaries and approval requests."""
    args = ", ".join(f"{k}={v!r}" for k, v in call.arguments.items())
    return shortened(f"{call.name}({args})", limit, fold=False)


def shortened(text: str, limit: int = 160, *, fold: bool = True) -> str:
    """`text` cut to `limit` characters with `...`; `fold`: its white space folded to single spaces first."""
    text = " ".join(text.split()) if fold else text
    return text if len(text) <= limit else text[: limit - 3] + "..."


def assistant_message(text: str, tool_calls: list[ToolCall]) -> Message:
    """The model's reply as a message: its text, then the tool calls it asked for."""
    blocks: list[Block] = [TextBlock(text=text)] if text else []
    blocks += [ToolUseBlock(id=c.id, name=c.name, arguments=c.arguments) for c in tool_calls]
    return Message(role="assistant", content=blocks)


class StoredConversation(BaseModel):
    """Where `call_llm` left the conversation in the blob store: the chain's head key and its message count."""

    head: str
    length: int = Field(ge=0)


class Conversation(BaseModel):
    """The messages of one agent run, in order: stored ones behind `head`, then the unstored `messages`."""

    messages: list[Message] = Field(default_factory=list)
    by_reference: bool = False
    """Whether `call_llm` stores the conversation and returns a reference instead of the workflow keeping it."""
    head: str | None = None
    """Blob key of the stored chain of earlier messages (None: nothing stored yet)."""
    stored: int = 0
    """How many messages the stored chain holds."""

    @classmethod
    def start(cls, prompt: str, by_reference: bool = False) -> Conversation:
        """A conversation holding only the user's prompt."""
        return cls(messages=[Message(role="user", content=[TextBlock(text=prompt)])], by_reference=by_reference)

    @property
    def length(self) -> int:
        """Messages in the whole conversation, stored or not."""
        return self.stored + len(self.messages)

    def adopt(self, stored: StoredConversation) -> None:
        """The store now holds every message (including the latest reply): keep only its reference."""
        self.head, self.stored, self.messages = stored.head, stored.length, []

    def add_assistant_turn(
        self, text: str, tool_calls: list[ToolCall], stored: StoredConversation | None = None
    ) -> None:
        """Record the model's reply: its text and the tool calls it asked for (or, if `call_llm` stored it, its reference)."""
        if stored is not None:
            self.adopt(stored)
            return
        self.messages.append(assistant_message(text, tool_calls))

    def add_tool_results(self, outcomes: list[ToolOutcome]) -> None:
        """Answer every tool call of the last assistant turn, in one user message."""
        blocks: list[Block] = [
            ToolResultBlock(
                tool_use_id=o.tool_call_id, content=o.content, is_error=o.is_error, content_ref=o.content_ref
            )
            for o in outcomes
        ]
        self.messages.append(Message(role="user", content=blocks))

    def add_user_text(self, text: str) -> None:
        """Add a plain user message (e.g. a nudge to wrap up)."""
        self.messages.append(Message(role="user", content=[TextBlock(text=text)]))
