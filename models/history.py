"""The limits that keep a run's event history small, as the worker's settings give them to a workflow."""

from __future__ import annotations

from pydantic import BaseModel, Field


class HistoryLimits(BaseModel):
    """Read once per run (a local activity, so recorded in history) and carried across continue-as-new."""

    offload: bool = True
    """Keep the conversation and large tool outputs in the blob store; history holds references."""
    max_events: int = Field(2000, ge=1)
    """Continue as new past this many history events (or sooner, when the server suggests it)."""
    context_summary_tokens: int = Field(100_000, ge=0)
    """Summarise older turns once a `call_llm` input passed this many tokens (0: never)."""

    @classmethod
    def legacy(cls) -> HistoryLimits:
        """How runs started before bounded history behave: everything inline, one generation, no summaries."""
        return cls(offload=False, max_events=10**9, context_summary_tokens=0)

    @property
    def continues_as_new(self) -> bool:
        """Continue-as-new carries references only, so it needs the conversation offloaded."""
        return self.offload

    @property
    def summarises(self) -> bool:
        """Summaries replace stored turns by reference, so they too need offload."""
        return self.offload and self.context_summary_tokens > 0


RECENT_MESSAGES_KEPT = 4
"""A summary condenses everything but the prompt and (about) the last two rounds, which stay verbatim."""
