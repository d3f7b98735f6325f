"""A provider's `retry-after`, honoured by every model call of this worker, not only the one that was told.

A 429 fails its attempt with the server's delay (Temporal waits that long before retrying it); the other
calls this worker is about to send to that provider wait out the same delay instead of collecting their
own 429s. Across the fleet the provider queue's rate cap (LLM_RATE_LIMITS) does the rest.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import TypeVar

from temporalio.exceptions import ApplicationError

T = TypeVar("T")
MAX_HOLD_SECONDS = 120.0
"""The longest a retry-after may hold this worker's calls to one provider."""


class ProviderCooldown:
    """`run(provider, call)`: waits while the provider asked to be left alone, and learns from a 429's delay."""

    def __init__(self) -> None:
        self._until: dict[str, float] = {}

    def hold(self, provider: str, seconds: float) -> None:
        """No call to `provider` before `seconds` from now (at most MAX_HOLD_SECONDS)."""
        until = time.monotonic() + min(seconds, MAX_HOLD_SECONDS)
        self._until[provider] = max(self._until.get(provider, 0.0), until)

    def remaining(self, provider: str) -> float:
        """Seconds until calls to `provider` may go out again."""
        return max(0.0, self._until.get(provider, 0.0) - time.monotonic())

    async def run(self, provider: str, call: Awaitable[T]) -> T:
        if (wait := self.remaining(provider)) > 0:
            await asyncio.sleep(wait)
        try:
            return await call
        except ApplicationError as exc:
            if exc.next_retry_delay is not None:  # the provider said when to come back (429/529 retry-after)
                self.hold(provider, exc.next_retry_delay.total_seconds())
            raise
