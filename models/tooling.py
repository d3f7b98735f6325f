"""Input of the `run_tool` activity."""

from __future__ import annotations

from pydantic import BaseModel

from models.conversation import ToolCall


class ToolInvocation(BaseModel):
    """One validated tool call, with the idempotency key that makes its side effect happen once."""

    agent: str
    call: ToolCall
    idempotency_key: str
    offload: bool = False
    """Store a large output in the blob store and return a preview plus its key, so history stays small."""
