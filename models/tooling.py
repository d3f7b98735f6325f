"""Input of the `run_tool` activity, and how many of one reply's tool calls may run."""

from __future__ import annotations

from pydantic import BaseModel

from models.conversation import ToolCall

DEFAULT_MAX_TOOL_CALLS_PER_TURN = 32
"""Tool calls of one model reply that run; the rest go back to the model as errors (an agent may set its own)."""


def refused_tool_call_message(asked: int, limit: int) -> str:
    """What the model reads for each tool call of a reply beyond `limit`."""
    return (
        f"Not run: the reply asked for {asked} tool calls and at most {limit} run per reply; "
        f"the first {limit} ran. Ask again for the ones you still need."
    )


class ToolInvocation(BaseModel):
    """One validated tool call, with the idempotency key that makes its side effect happen once."""

    agent: str
    call: ToolCall
    idempotency_key: str
    offload: bool = False
    """Store a large output in the blob store and return a preview plus its key, so history stays small."""
