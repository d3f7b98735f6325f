"""The conversation an agent loop carries from step to step.

Workflows only touch it through `Conversation`'s methods, so it can later become a
reference into a store without changing workflow logic (see DESIGN.md, "History stays bounded").
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

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


Block = Annotated[Union[TextBlock, ToolUseBlock, ToolResultBlock], Field(discriminator="type")]


class Message(BaseModel):
    """One turn: provider-neutral, translated to each provider's wire format by its adapter."""

    role: Literal["user", "assistant"]
    content: list[Block]


class ToolCall(BaseModel):
    """A tool call the model asked for."""

    id: str
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class ToolOutcome(BaseModel):
    """The result of one tool call as the model will see it."""

    tool_call_id: str
    name: str
    content: str
    is_error: bool = False


class Conversation(BaseModel):
    """The messages of one agent run, in order."""

    messages: list[Message] = Field(default_factory=list)

    @classmethod
    def start(cls, prompt: str) -> "Conversation":
        """A conversation holding only the user's prompt."""
        return cls(messages=[Message(role="user", content=[TextBlock(text=prompt)])])

    def add_assistant_turn(self, text: str, tool_calls: list[ToolCall]) -> None:
        """Record the model's reply: its text and the tool calls it asked for."""
        blocks: list[Block] = [TextBlock(text=text)] if text else []
        blocks += [ToolUseBlock(id=c.id, name=c.name, arguments=c.arguments) for c in tool_calls]
        self.messages.append(Message(role="assistant", content=blocks))

    def add_tool_results(self, outcomes: list[ToolOutcome]) -> None:
        """Answer every tool call of the last assistant turn, in one user message."""
        blocks: list[Block] = [
            ToolResultBlock(tool_use_id=o.tool_call_id, content=o.content, is_error=o.is_error) for o in outcomes
        ]
        self.messages.append(Message(role="user", content=blocks))

    def add_user_text(self, text: str) -> None:
        """Add a plain user message (e.g. a nudge to wrap up)."""
        self.messages.append(Message(role="user", content=[TextBlock(text=text)]))
