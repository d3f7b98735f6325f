"""Provider adapters behind one small protocol; SDK imports stay in this package."""

from __future__ import annotations

from typing import Protocol

from models.conversation import Conversation
from models.llm import LlmResponse
from tools.registry import Tool


class LlmProvider(Protocol):
    """Turns one provider-neutral request into one provider call."""

    async def complete(
        self, *, model: str, system: str, conversation: Conversation, tools: list[Tool], max_tokens: int
    ) -> LlmResponse:
        """Call the model once; raise `ApplicationError` classified as retryable or not."""
        ...
