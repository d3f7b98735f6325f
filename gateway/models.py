"""The gateway's request and response bodies (their JSON schemas make the OpenAPI document)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from models.approval import PendingApproval
from models.run import Strict

WorkflowType = Literal["AgentLoopWorkflow", "BlackBoxAgentWorkflow", "HybridAgentWorkflow"]


class StartRun(Strict):
    """`POST /v1/runs`: which workflow, its input (as `temporal workflow start --input` takes it), an optional id."""

    workflow: WorkflowType
    input: dict[str, Any] = Field(default_factory=dict)
    workflow_id: str | None = Field(None, min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:@-]+$")
    """The same id again with the same body returns the same run; with another body it is a conflict."""


class RunStarted(BaseModel):
    """The run a start created (201) or found (200)."""

    workflow_id: str
    run_id: str


class RunView(BaseModel):
    """`GET /v1/runs/{workflow_id}`."""

    workflow_id: str
    temporal_status: str | None
    status: dict[str, Any] | None
    """The run's `status` query (null when no worker answers)."""
    result: dict[str, Any] | None
    """The run's result once it completed."""
    failure: str | None = None
    """Why the run failed, when it did."""


class DecisionBody(Strict):
    """`POST /v1/runs/{workflow_id}/approvals/{request_id}`: the approver is the token's identity, never the body's."""

    approved: bool
    comment: str = Field("", max_length=5000)


class PendingRequest(PendingApproval):
    """One request the caller may decide (`GET /v1/approvals`): what the `status` query shows, and its run."""

    workflow_id: str


class RecordedDecision(BaseModel):
    """The decision as the run recorded it."""

    request_id: str
    approved: bool
    approver: str
    comment: str = ""
    decided_at: datetime
    via: str


class Problem(BaseModel):
    """Every error: what went wrong, and for a bad input the field it names."""

    detail: str
    field: str | None = None
