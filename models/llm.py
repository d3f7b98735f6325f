"""Input and output of the `call_llm` activity: small, holding only what the workflow decides on."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from models.conversation import Conversation, StoredConversation, ToolCall
from models.run import Usage
from models.spend_limits import SpendNote

DEFAULT_MAX_OUTPUT_TOKENS = 4096
"""Output tokens one model call may produce, unless the budget leaves fewer."""
SUMMARY_MAX_OUTPUT_TOKENS = 2048
"""Output tokens of a summary of earlier turns."""


class LlmRequest(BaseModel):
    """One inference: the agent (whose system prompt and tools the activity looks up), model and conversation."""

    agent: str
    spec: str | None = None
    """Digest of the agent spec the run pinned (activities read it from the blob store); None: the worker's own."""
    model: str | None = None
    conversation: Conversation
    max_tokens: int = Field(DEFAULT_MAX_OUTPUT_TOKENS, ge=1)
    task: Literal["reply", "summarise"] = "reply"
    """`reply`: the agent's next turn. `summarise`: condense the older turns of a stored conversation into one."""
    progress: bool = False
    """Publish the reply's text deltas on the run's progress stream (False in runs recorded before streams)."""


class LlmResponse(BaseModel):
    """The model's reply reduced to what the loop needs."""

    model: str
    text: str = ""
    tool_calls: list[ToolCall] = Field(default_factory=list)
    stop_reason: str
    usage: Usage
    stored: StoredConversation | None = None
    """For a conversation kept by reference: where it now ends (the reply included, or the summary in place)."""
    earlier_attempts: Usage | None = None
    """Replies earlier attempts of this call were billed for before they failed; they count against the budget."""
    spend_limit: SpendNote | None = Field(None, exclude_if=lambda v: v is None)
    """The run's tightest spend limit across runs after this call (SPEND_LIMITS), for its status."""
    summarised: int = 0
    """Messages a `summarise` task folded into the summary (0: nothing old enough to condense; no model call)."""
