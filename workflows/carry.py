"""What a run hands from one generation to the next when it continues as new: references and totals only."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field
from temporalio.contrib.workflow_streams import WorkflowStreamState

from models.agents import PinnedAgents
from models.conversation import Conversation
from models.guardrails import BreakerState
from models.history import HistoryLimits
from workflows.approvals import ApprovalBook
from workflows.ledger import RunLedger


class LoopState(BaseModel):
    """Where a steered loop is: its conversation (a reference when offloaded) and what it measured last."""

    conversation: Conversation
    last_text: str = ""
    """The model's latest text, for the stop summary if a ceiling ends the run."""
    context_tokens: int = 0
    """Input plus output tokens of the latest reply: how big the model's context has grown."""
    prompt: str = ""
    """The request the loop started with (what a handoff with `handoff_context = "none"` passes on)."""
    active_agent: str | None = None
    """The agent that has the conversation after handoffs (None: the loop's own)."""
    breakers: BreakerState = Field(default_factory=BreakerState)
    """The circuit breakers' counts, so a continued run trips where one long run would."""


class RunCarry(BaseModel):
    """The second argument of every generation after the first; small whatever the run's length."""

    trace_id: str
    """The first generation's trace id: the run's result names one trace however many generations it took."""
    generation: int = Field(ge=2)
    limits: HistoryLimits
    """The limits the run started with, so a run never changes mode halfway."""
    ledger: RunLedger
    """Budget, totals, steps and record of work so far: ceilings span the whole run."""
    loop: LoopState
    approvals: ApprovalBook
    pinned: PinnedAgents | None = None
    """The agents the first generation pinned (None in runs recorded before pinning: the built-ins)."""
    stage_output: dict[str, Any] | None = None
    """Workflow-specific results of earlier stages (the hybrid's plan and specialist outputs)."""
    progress: WorkflowStreamState | None = None
    """The run's progress stream (events, offsets, publishers' dedup state), so followers see one stream."""
