"""The approval webhook's contract: what a run tells the `notify_approval` activity when a request opens."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel


class ApprovalNotice(BaseModel):
    """One opened approval request, as the webhook announces it (with signed links added by the activity)."""

    workflow_id: str
    first_run_id: str
    request_id: str
    kind: str
    summary: str
    proposal: dict[str, Any]
    approvers: list[str]
    expires_at: datetime

    @property
    def idempotency_key(self) -> str:
        """The same for every attempt and every worker, so the receiver can drop a repeated POST."""
        return f"approval:{self.workflow_id}:{self.first_run_id}:{self.request_id}"


class ApprovalNoticeReceipt(BaseModel):
    """What `notify_approval` did; never the links themselves (they are capabilities, and history is widely read)."""

    sent: bool
    destination: str | None = None
    links: int = 0
    duplicate: bool = False
