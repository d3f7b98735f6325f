"""Human approval: the requests a run opens, the decisions people send, and the payloads they type."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from models.run import Strict


class ApproveSignal(Strict):
    """Payload of signal `approve`."""

    approver: str = Field(min_length=1, max_length=200)
    comment: str = Field("", max_length=5000)
    request_id: str | None = None


class RejectSignal(Strict):
    """Payload of signal `reject`."""

    approver: str = Field(min_length=1, max_length=200)
    reason: str = Field("", max_length=5000)
    request_id: str | None = None


class DecideUpdate(Strict):
    """Payload of update `decide`: validated before it is accepted, so a wrong one is refused with a reason."""

    request_id: str = Field(min_length=1)
    approved: bool
    approver: str = Field(min_length=1, max_length=200)
    comment: str = Field("", max_length=5000)


class Decision(BaseModel):
    """A recorded decision on one request."""

    request_id: str
    approved: bool
    approver: str
    comment: str = ""
    decided_at: datetime
    via: Literal["signal", "update", "timeout", "cancelled"]


class ApprovalRequest(BaseModel):
    """Something a run wants to do that a person must allow first."""

    request_id: str
    kind: Literal["tool_call", "plan"]
    summary: str
    proposal: dict[str, Any]
    approvers: list[str]
    requested_at: datetime
    expires_at: datetime
    decision: Decision | None = None
    any_approver: bool = False
    """`approvers` is `["*"]` and the run honours it: any approver may decide (the gateway: any `approver` token)."""


class IgnoredDecision(BaseModel):
    """A signal that changed nothing (bad payload, unlisted approver, no such request), kept for audit."""

    received_at: datetime
    signal: str
    approver: str | None = None
    request_id: str | None = None
    reason: str


class PendingApproval(BaseModel):
    """What the `status` query shows of an open request."""

    request_id: str
    kind: str
    summary: str
    proposal: dict[str, Any]
    approvers: list[str]
    expires_at: datetime
