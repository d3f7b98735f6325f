"""Input, plan and output of `HybridAgentWorkflow`, and the `send_notification` activity's contract."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from models.run import AgentRunInput

MAX_CONSULTATIONS = 4


class HybridInput(AgentRunInput):
    """The contract's input plus how often a rejected plan may be revised; `agent` executes the approved plan."""

    max_revisions: int = Field(0, ge=0, le=10)
    """How many times a rejection sends the run back to planning (0: a rejection ends the run)."""


class Consultation(BaseModel):
    """One specialist the planner wants to hear, and what to ask it."""

    model_config = ConfigDict(extra="forbid")
    agent: str = Field(min_length=1)
    prompt: str = Field(min_length=1, max_length=20_000)


class HybridPlan(BaseModel):
    """The planner's structured answer (stage 1)."""

    model_config = ConfigDict(extra="forbid")
    summary: str = Field(min_length=1, max_length=2_000)
    consultations: list[Consultation] = Field(default_factory=list, max_length=MAX_CONSULTATIONS)
    execution: str = Field(min_length=1, max_length=20_000)
    """What the executing agent must do once the plan is approved."""


class HybridOutput(BaseModel):
    """What a hybrid run produced: the final answer with the plan and specialist outputs behind it."""

    answer: Any = None
    plan: HybridPlan | None = None
    specialist_outputs: dict[str, Any] = Field(default_factory=dict)
    revisions: list[str] = Field(default_factory=list)
    """Reasons given for each rejected plan, in order."""
    stopped: Any = None
    """Why the run ended before the answer (rejection, timeout, budget summary), when it did."""
    notification: dict[str, Any] | None = None
    """The `send_notification` receipt, or the error that kept it from being delivered."""


class NotificationRequest(BaseModel):
    """One notification; `idempotency_key` makes a retried or repeated send a no-op."""

    idempotency_key: str
    workflow_id: str
    status: str
    subject: str
    body: dict[str, Any] = Field(default_factory=dict)


class NotificationReceipt(BaseModel):
    """Where the notification went and whether it had already been delivered."""

    channel: str
    destination: str
    duplicate: bool = False
