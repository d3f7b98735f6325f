"""Price per million tokens, by model, used to turn token usage into cost (workflows and activities alike).

Unknown models are charged at the dearest known rate so that a cost budget errs on the safe side.
"""

from __future__ import annotations

# (input USD per 1M tokens, output USD per 1M tokens)
PRICES_PER_MTOK: dict[str, tuple[float, float]] = {
    "anthropic:claude-opus-5-5": (5.00, 25.00),
    "anthropic:claude-sonnet-5-5": (3.00, 15.00),
    "anthropic:claude-haiku-5-5": (1.00, 5.00),
    "openai:gpt-5": (1.25, 10.00),
    "openai:gpt-5-mini": (0.25, 2.00),
}
FALLBACK_PER_MTOK = max(PRICES_PER_MTOK.values(), key=lambda p: p[0] + p[1])


def prices(model: str | None) -> tuple[float, float]:
    """(input, output) USD per 1M tokens of `model`; the dearest known rate when unknown or not yet decided."""
    return PRICES_PER_MTOK.get(model or "", FALLBACK_PER_MTOK)


def cost_usd(model: str, input_tokens: int, output_tokens: int) -> float:
    """The cost of one call to `model` (`provider:model`)."""
    per_in, per_out = prices(model)
    return round((input_tokens * per_in + output_tokens * per_out) / 1_000_000, 8)
