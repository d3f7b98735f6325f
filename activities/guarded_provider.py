"""`GuardedProvider`: an `LlmProvider` whose every call reserves and settles through `SpendGuard.call`.

It wraps the provider behind `call_llm` (loop, planner, screening, summaries) and the Claude black box's, so those
are guarded without knowing it (activities/spend_guard.py has the rule).
"""

from __future__ import annotations

from activities.spend_guard import SpendGuard
from models.budget import estimate_tokens
from models.conversation import Conversation
from models.llm import LlmResponse
from tools.registry import Tool


class GuardedProvider:
    """An `LlmProvider` whose every call goes through `SpendGuard.call`."""

    def __init__(self, provider: object, guard: SpendGuard) -> None:
        self._provider = provider
        self.spend_guard = guard

    def __getattr__(self, name: str) -> object:
        # The engines also use the provider's client and token counting: those pass straight through.
        return getattr(self._provider, name)

    async def complete(
        self, *, model: str, system: str, conversation: Conversation, tools: list[Tool], max_tokens: int
    ) -> LlmResponse:
        """The wrapped provider's `complete`, reserved and settled."""
        # The whole request as the provider sees it, tools' schemas included, at the conservative ratio: errs high.
        estimate = estimate_tokens(
            {
                "system": system,
                "messages": [m.model_dump(mode="json") for m in conversation.messages],
                "tools": [{"name": t.name, "description": t.description, "schema": t.input_schema()} for t in tools],
            }
        )
        return await self.spend_guard.call(
            model=model,
            input_tokens=estimate,
            max_output=max_tokens,
            make=lambda: self._provider.complete(  # type: ignore[attr-defined]
                model=model, system=system, conversation=conversation, tools=tools, max_tokens=max_tokens
            ),
        )
