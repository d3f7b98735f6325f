"""One model call within what a branch has left: the input estimate, the output allowance, the refusal.

Pure functions over typed values, shared by the workflows (pattern B's loop, the hybrid's planner) and
the black-box engines, so every model call of a run is budgeted the same way (docs/budgets.md).
"""

from __future__ import annotations

import json
import math
from typing import Any

from pydantic import BaseModel, Field

from models.conversation import Conversation, Message
from models.pricing import prices
from models.run import Usage

BUDGET_ESTIMATES_PATCH = "budget-estimates"
"""Runs recorded before it made every model call their ceilings allowed, unestimated; they replay so."""
CHARS_PER_TOKEN = 3
"""The conservative estimate's ratio: tokenisers give about 4 characters of English or JSON per token."""
MIN_OUTPUT_TOKENS = 16
"""A call that would be allowed fewer output tokens than this is not made: too little would be left."""


def estimate_tokens(payload: Any) -> int:
    """Input tokens of `payload` (text, or anything JSON-serialisable), erring high: one per 3 characters."""
    text = payload if isinstance(payload, str) else json.dumps(payload, sort_keys=True, default=str)
    return len(text) // CHARS_PER_TOKEN + 1


class Allowance(BaseModel):
    """What one branch (a black box) may spend: its share of the run's tokens, cost and steps left."""

    max_tokens: int = Field(ge=0)
    max_cost_usd: float = Field(ge=0)
    max_steps: int = Field(ge=1)
    """Turns (model calls) the branch may make."""


class CallFit(BaseModel):
    """The next call's output allowance, or why it is not made."""

    output_tokens: int = 0
    refused: str | None = None


def fit_call(
    *, tokens_left: int, cost_left: float, input_estimate: int, model: str | None, default_output: int
) -> CallFit:
    """Output tokens the next call may ask for once `input_estimate` is paid, or a refusal when too few remain.

    Cost uses `model`'s prices (the dearest known rate when the model is not known yet).
    """
    by_tokens = tokens_left - input_estimate
    if by_tokens < MIN_OUTPUT_TOKENS:
        return CallFit(
            refused=f"token budget too small for the next model call: about {input_estimate} input tokens "
            f"estimated, {max(0, tokens_left)} tokens left"
        )
    per_in, per_out = prices(model)
    cost_after_input = cost_left - input_estimate * per_in / 1_000_000
    by_cost = math.floor(cost_after_input * 1_000_000 / per_out + 1e-6) if per_out > 0 else by_tokens
    if by_cost < MIN_OUTPUT_TOKENS:
        return CallFit(
            refused=f"cost budget too small for the next model call: about {input_estimate} input tokens "
            f"estimated, ${max(0.0, cost_left):.6f} left"
        )
    return CallFit(output_tokens=min(default_output, by_tokens, by_cost))


def fit_within(
    allowance: Allowance, spent: Usage, *, input_estimate: int, model: str | None, default_output: int
) -> CallFit:
    """`fit_call` for a branch that has spent `spent` of `allowance`."""
    return fit_call(
        tokens_left=allowance.max_tokens - spent.total_tokens,
        cost_left=allowance.max_cost_usd - spent.cost_usd,
        input_estimate=input_estimate,
        model=model,
        default_output=default_output,
    )


def spend_in(details: Any) -> Usage | None:
    """The cumulative spend an `invoke_agent` or `call_llm` attempt reported (heartbeat or failure details)."""
    for item in reversed(list(details or [])):
        if isinstance(item, dict) and isinstance(item.get("usage"), dict):
            try:
                return Usage.model_validate(item["usage"])
            except ValueError:
                return None
    return None


def input_estimate(*, whole: Any, counted: int | None = None, measured: int = 0, since: Any = None) -> int:
    """The one estimate of a model call's input tokens, from the best source a loop has:

    1. `counted`: the provider's own count of this very request (the black-box engines ask for one before each call;
       a workflow cannot, it does no I/O);
    2. `measured`: the context the provider billed for the last reply (its input plus output), plus `since`, what
       was added after it, at `CHARS_PER_TOKEN` (the pattern-B loop);
    3. `whole`: the serialised request at `CHARS_PER_TOKEN` (a first call, or a count that failed).
    """
    if counted is not None:
        return counted
    if measured > 0:
        return measured + (estimate_tokens(since) if since else 0)
    return estimate_tokens(whole)


def usable_count(value: object) -> int | None:
    """A provider's token count when it is one (some compatible proxies answer the counting path otherwise)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def estimate_call_input(
    *, system: str, tools: list[dict[str, Any]], conversation: Conversation, context_tokens: int = 0
) -> int:
    """`input_estimate` in a workflow, from what it holds: the last reply's measured context, else the whole request."""
    since = [m.model_dump(mode="json") for m in _since_last_reply(conversation)] if context_tokens > 0 else None
    messages = [m.model_dump(mode="json") for m in conversation.messages] if context_tokens <= 0 else []
    return input_estimate(
        whole={"system": system, "tools": tools, "messages": messages}, measured=context_tokens, since=since
    )


def _since_last_reply(conversation: Conversation) -> list[Message]:
    messages = conversation.messages
    last = max((i for i, m in enumerate(messages) if m.role == "assistant"), default=-1)
    return messages[last + 1 :]
