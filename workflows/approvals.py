"""Approval bookkeeping: plain functions over typed state, shared by every workflow type.

Signals are fire-and-forget, so a bad one is recorded and ignored; the `decide` update
is checked first (`check_update`) so a person is told why it was refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError

from models.approval import (
    ApprovalRequest,
    ApproveSignal,
    DecidedView,
    DecideUpdate,
    Decision,
    IgnoredDecision,
    PendingApproval,
    RejectSignal,
    gateway_may_decide,
)
from models.errors import AlreadyDecided, DecisionRefused, NotAnApprover, UnknownRequest
from workflows.approval_text import first_error, json_type

MAX_IGNORED = 100
MAX_DECIDED_SHOWN = 50
"""Decided requests the `status` query lists (a run's older ones stay in its history)."""
MAX_IGNORED_CARRIED = 20
"""Ignored signals a run hands to its next generation (the audit trail of older ones stays in history)."""


DECIDE_EXAMPLE = '{"request_id": "req-1", "approved": true, "approver": "alice"}'
"""What a `decide` payload looks like, for refusals."""


def expiry(now: datetime, timeout: timedelta) -> datetime:
    """`now + timeout`, clamped to the last representable moment instead of overflowing (a timer may still be set)."""
    try:
        return now + timeout
    except OverflowError:
        return datetime.max.replace(tzinfo=now.tzinfo)


class ApprovalBook(BaseModel):
    """Every request a run has opened and every decision it has received."""

    requests: list[ApprovalRequest] = Field(default_factory=list)
    ignored: list[IgnoredDecision] = Field(default_factory=list)
    opened_before: int = 0
    """Requests earlier generations of this run opened (continue-as-new), so ids never repeat."""

    def for_next_generation(self) -> ApprovalBook:
        """What continue-as-new carries: numbering, undecided requests, the latest ignored signals."""
        pending = self.pending()
        return ApprovalBook(
            requests=pending,
            ignored=self.ignored[-MAX_IGNORED_CARRIED:],
            opened_before=self.opened_before + len(self.requests) - len(pending),
        )

    def open(
        self,
        *,
        kind: Literal["tool_call", "plan"],
        summary: str,
        proposal: dict[str, Any],
        approvers: list[str],
        now: datetime,
        timeout: timedelta,
        any_approver: bool = False,
    ) -> ApprovalRequest:
        """Open a request; ids are `req-1`, `req-2`, ... in order; `any_approver`: `["*"]` lets anyone named decide."""
        request = ApprovalRequest(
            request_id=f"req-{self.opened_before + len(self.requests) + 1}",
            kind=kind,
            summary=summary,
            proposal=proposal,
            approvers=list(approvers),
            requested_at=now,
            expires_at=expiry(now, timeout),
            any_approver=any_approver,
        )
        self.requests.append(request)
        return request

    def get(self, request_id: str) -> ApprovalRequest | None:
        """The request with this id, if any."""
        return next((r for r in self.requests if r.request_id == request_id), None)

    def decidable(self, request_id: str | None) -> bool:
        """Whether a decision for `request_id` (None: the pending one) has something to decide: the request is open."""
        if request_id is None:
            return bool(self.pending())
        return self.get(request_id) is not None

    def pending(self) -> list[ApprovalRequest]:
        """Undecided requests, oldest first."""
        return [r for r in self.requests if r.decision is None]

    def pending_views(self) -> list[PendingApproval]:
        """Undecided requests as the `status` query shows them."""
        return [
            PendingApproval(
                request_id=r.request_id,
                kind=r.kind,
                summary=r.summary,
                proposal=r.proposal,
                approvers=r.approvers,
                expires_at=r.expires_at,
            )
            for r in self.pending()
        ]

    def apply_signal_args(
        self,
        signal: Literal["approve", "reject"],
        args: Sequence[Any],
        now: datetime,
        *,
        one_pending_only: bool = False,
    ) -> Decision | IgnoredDecision:
        """Apply a signal as it arrived: zero, one or several payloads; only exactly one JSON object can decide."""
        if len(args) != 1:
            example = '{"approver": "alice"}'
            return self._ignore(now, signal, None, None, f"expected one payload like {example}, got {len(args)}")
        return self.apply_signal(signal, args[0], now, one_pending_only=one_pending_only)

    def apply_signal(
        self, signal: Literal["approve", "reject"], payload: Any, now: datetime, *, one_pending_only: bool = False
    ) -> Decision | IgnoredDecision:
        """Apply an `approve`/`reject` signal, or record why it was ignored.

        `one_pending_only`: a signal without `request_id` while several requests wait is ambiguous and ignored
        (runs recorded before this rule decided the oldest).
        """
        model = ApproveSignal if signal == "approve" else RejectSignal
        if not isinstance(payload, Mapping):
            return self._ignore(now, signal, None, None, f"payload must be a JSON object, got {json_type(payload)}")
        try:
            parsed = model.model_validate(dict(payload))
        except ValidationError as exc:
            return self._ignore(
                now, signal, payload.get("approver"), payload.get("request_id"), f"invalid payload: {first_error(exc)}"
            )
        comment = parsed.comment if isinstance(parsed, ApproveSignal) else parsed.reason
        try:
            request = self._target(
                parsed.request_id,
                parsed.approver,
                one_pending_only=one_pending_only,
                authenticated_by=parsed.authenticated_by,
            )
        except DecisionRefused as exc:
            return self._ignore(now, signal, parsed.approver, parsed.request_id, str(exc))
        approved = signal == "approve"
        return self._decide(request, approved, parsed.approver, comment, now, "signal", parsed.authenticated_by)

    def check_update_args(self, args: Sequence[Any]) -> DecideUpdate:
        """Validate an update `decide` as it arrived (any number of payloads); raises DecisionRefused."""
        if len(args) != 1:
            raise DecisionRefused(f"expected one payload like {DECIDE_EXAMPLE}, got {len(args)}")
        return self.check_update(args[0])

    def check_update(self, payload: Any) -> DecideUpdate:
        """Validate an update `decide`; raises DecisionRefused with a clear message, changing nothing."""
        if not isinstance(payload, Mapping):
            raise DecisionRefused(f"payload must be a JSON object like {DECIDE_EXAMPLE}, got {json_type(payload)}")
        try:
            update = DecideUpdate.model_validate(dict(payload))
        except ValidationError as exc:
            raise DecisionRefused(f"invalid payload: {first_error(exc)}") from None
        self._target(update.request_id, update.approver, authenticated_by=update.authenticated_by)
        return update

    def apply_update(self, update: DecideUpdate, now: datetime) -> Decision:
        """Record a validated `decide` update."""
        request = self._target(update.request_id, update.approver, authenticated_by=update.authenticated_by)
        return self._decide(
            request, update.approved, update.approver, update.comment, now, "update", update.authenticated_by
        )

    def expire(self, request_id: str, now: datetime) -> Decision:
        """Nobody decided in time: the request counts as rejected."""
        request = self.get(request_id)
        assert request is not None and request.decision is None
        return self._decide(request, False, "timeout", "approval timed out", now, "timeout")

    def withdraw(self, now: datetime) -> list[Decision]:
        """The run was cancelled: every undecided request is closed, so none shows as pending any more."""
        return [
            self._decide(r, False, "cancellation", "the run was cancelled", now, "cancelled") for r in self.pending()
        ]

    def _target(
        self,
        request_id: str | None,
        approver: str,
        *,
        one_pending_only: bool = False,
        authenticated_by: str | None = None,
    ) -> ApprovalRequest:
        """The request a decision is for, or DecisionRefused saying why it cannot decide it.

        With `authenticated_by` (the gateway) the approver must be listed by name or by `*`, and an empty list
        allows no one; otherwise the sender's word is trusted as before (an empty list: anyone).
        """
        request: ApprovalRequest | None
        if request_id is None:
            pending = self.pending()
            if not pending:
                raise UnknownRequest("no approval request is pending")
            if one_pending_only and len(pending) > 1:
                ids = ", ".join(r.request_id for r in pending)
                raise DecisionRefused(
                    f"ambiguous: {len(pending)} requests are pending ({ids}); name one with request_id", "ambiguous"
                )
            request = pending[0]
        else:
            request = self.get(request_id)
            if request is None:
                known = ", ".join(r.request_id for r in self.pending()) or "none pending"
                raise UnknownRequest(f"unknown request_id {request_id!r} (pending: {known})")
        if request.decision is not None:
            d = request.decision
            verdict = "approved" if d.approved else "rejected"
            raise AlreadyDecided(
                f"request {request.request_id} was already {verdict} by {d.approver}",
                "expired" if d.via == "timeout" else None,
            )
        if authenticated_by is not None:
            if not gateway_may_decide(request.approvers, approver):
                allowed = ", ".join(request.approvers) or "no one: the request lists no approvers"
                raise NotAnApprover(
                    f"approver {approver!r} is not allowed to decide {request.request_id} through the "
                    f"{authenticated_by} (allowed: {allowed})"
                )
        elif request.approvers and not request.any_approver and approver not in request.approvers:
            raise NotAnApprover(
                f"approver {approver!r} is not allowed to decide (allowed: {', '.join(request.approvers)})"
            )
        return request

    def _decide(
        self,
        request: ApprovalRequest,
        approved: bool,
        approver: str,
        comment: str,
        now: datetime,
        via: str,
        authenticated_by: str | None = None,
    ) -> Decision:
        request.decision = Decision(
            request_id=request.request_id,
            approved=approved,
            approver=approver,
            comment=comment,
            decided_at=now,
            via=via,
            authenticated_by=authenticated_by,
        )
        return request.decision

    def decided_views(self, limit: int = MAX_DECIDED_SHOWN) -> list[DecidedView]:
        """The latest decided requests (newest last), so a caller can tell 'decided' from 'never opened'."""
        decided = [r for r in self.requests if r.decision is not None][-limit:]
        return [DecidedView.model_validate(r.decision, from_attributes=True) for r in decided]

    def _ignore(self, now: datetime, signal: str, approver: Any, request_id: Any, reason: str) -> IgnoredDecision:
        entry = IgnoredDecision(
            received_at=now,
            signal=signal,
            approver=approver if isinstance(approver, str) else None,
            request_id=request_id if isinstance(request_id, str) else None,
            reason=reason,
        )
        self.ignored.append(entry)
        del self.ignored[:-MAX_IGNORED]
        return entry
