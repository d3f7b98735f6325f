"""Input and output of the `call_llm` activity: small, holding only what the workflow decides on."""

from __future__ import annotations

from pydantic import BaseModel, Field

from models.conversation import Conversation, ToolCall
from models.run import Usage


class LlmRequest(BaseModel):
    """One inference: the agent (whose system prompt and tools the activity looks up), model and conversation."""

    agent: str
    model: str | None = None
    conversation: Conversation
    max_tokens: int = Field(4096, ge=1)


class LlmResponse(BaseModel):
    """The model's reply reduced to what the loop needs."""

    model: str
    text: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    stop_reason: str
    usage: Usage
