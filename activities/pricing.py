"""Token prices for the activities; the table lives in `models/pricing.py` so workflows can budget with it too."""

from __future__ import annotations

from models.pricing import FALLBACK_PER_MTOK, PRICES_PER_MTOK, cost_usd, prices

__all__ = ["FALLBACK_PER_MTOK", "PRICES_PER_MTOK", "cost_usd", "prices"]
