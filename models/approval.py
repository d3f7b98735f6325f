"""Human approval: the requests a run opens, the decisions people send, and the payloads they type."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from models.run import Strict

AuthenticatedBy = Literal["gateway"]
"""Who vouches for a decision's `approver`: the gateway (a token or a signed link). Without it, the sender's word."""


class ApproveSignal(Strict):
    """Payload of signal `approve`."""

    approver: str = Field(min_length=1, max_length=200)
    comment: str = Field("", max_length=5000)
    request_id: str | None = None
    authenticated_by: AuthenticatedBy | None = None
    """Set by the gateway: `approver` is the identity it authenticated, held to the gateway's approver rule."""


class RejectSignal(Strict):
    """Payload of signal `reject`."""

    approver: str = Field(min_length=1, max_length=200)
    reason: str = Field("", max_length=5000)
    request_id: str | None = None
    authenticated_by: AuthenticatedBy | None = None


class DecideUpdate(Strict):
    """Payload of update `decide`: validated before it is accepted, so a wrong one is refused with a reason."""

    request_id: str = Field(min_length=1)
    approved: bool
    approver: str = Field(min_length=1, max_length=200)
    comment: str = Field("", max_length=5000)
    authenticated_by: AuthenticatedBy | None = None
    """Set by the gateway: `approver` is the identity it authenticated (see `ApproveSignal`)."""


class Decision(BaseModel):
    """A recorded decision on one request."""

    request_id: str
    approved: bool
    approver: str
    comment: str = ""
    decided_at: datetime
    via: Literal["signal", "update", "timeout", "cancelled"]
    authenticated_by: AuthenticatedBy | None = None
    """The gateway, when it authenticated `approver`; None when the approver is the sender's word."""


class DecidedView(BaseModel):
    """What the `status` query shows of a decided request."""

    request_id: str
    approved: bool
    approver: str
    decided_at: datetime
    via: str
    authenticated_by: str | None = None


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


def gateway_may_decide(approvers: list[str], identity: str) -> bool:
    """The gateway's approver rule, one place for the gateway and the run: the request lists `identity` or `*`.

    An empty list means no one (unlike a signal's sender, a gateway caller is not trusted by default).
    """
    return "*" in approvers or identity in approvers


PENDING_MEMO = "pending_approvals"
"""Memo key under which a waiting run lists its open requests, so the gateway lists them from visibility alone."""
MEMO_PROPOSAL_CHARS = 2000
"""A proposal longer than this (as JSON) is shown in the memo as its opening only; the run's status has it whole."""


def memo_entry(pending: PendingApproval) -> dict[str, Any]:
    """One open request as the memo keeps it: small enough that many fit within Temporal's memo limit."""
    entry = pending.model_dump(mode="json")
    shown = json.dumps(entry["proposal"], sort_keys=True)
    if len(shown) > MEMO_PROPOSAL_CHARS:
        entry["proposal"] = {"truncated": True, "opening": shown[:MEMO_PROPOSAL_CHARS]}
    entry["summary"] = entry["summary"][:MEMO_PROPOSAL_CHARS]
    return entry
