"""What the `status` query returns."""

from __future__ import annotations

from pydantic import BaseModel, Field

from models.approval import DecidedView, IgnoredDecision, PendingApproval
from models.run import RunStatus, Usage
from models.spend_limits import SpendNote


class StatusView(BaseModel):
    """Where a run is: its state, step, spending and open approval requests."""

    state: RunStatus
    agent: str | None = None
    active_agent: str | None = None
    """The agent that has the conversation now (after handoffs); None until the run's first agent starts."""
    pattern: str
    stage: str | None = None
    waiting_for: str | None = None
    step: int = 0
    usage: Usage = Field(default_factory=Usage)
    pending_approvals: list[PendingApproval] = Field(default_factory=list)
    ignored_decisions: list[IgnoredDecision] = Field(default_factory=list)
    spend_limit: SpendNote | None = Field(None, exclude_if=lambda v: v is None)
    """The tightest spend limit across runs this run counts against, and what is left of it (SPEND_LIMITS)."""
    decided_approvals: list[DecidedView] = Field(default_factory=list)
    """The latest decided requests: a decision for one of these is refused as already made (409), not unknown."""
