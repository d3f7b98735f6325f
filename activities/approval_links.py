"""Signed approval links: `<payload>.<signature>`, an HMAC-SHA256 capability to decide one request as one approver.

The payload (base64url JSON) names the workflow and its run (the first run id, so a later run that reuses
the workflow id is not decided by an old link), the request, the approver, a digest of the proposal and the
request's expiry. The signature covers the payload exactly as sent and is compared as text, so a link
altered in any character is refused. A link works once because the run refuses a second decision.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from models.errors import AgentServiceError

_CONTEXT = b"durable-agents approval link v2\n"
"""v2 links sign the run; v1 links (which did not) no longer verify."""


class LinkInvalid(AgentServiceError):
    """The link was not made with this secret, was altered, or is malformed."""


@dataclass(frozen=True)
class ApprovalLink:
    """What a verified link allows: `approver` may decide `request_id` of `workflow_id`'s run `first_run_id`
    until `expires_at`."""

    workflow_id: str
    first_run_id: str
    request_id: str
    approver: str
    proposal_digest: str
    expires_at: datetime

    def expired(self, now: datetime | None = None) -> bool:
        """Whether the request (and so the link) has expired."""
        return (now or datetime.now(UTC)) >= self.expires_at


def proposal_digest(kind: str, summary: str, proposal: dict[str, Any]) -> str:
    """SHA-256 of the proposal as a person sees it, so a link decides only what it was made for."""
    canonical = json.dumps(
        {"kind": kind, "summary": summary, "proposal": proposal}, sort_keys=True, separators=(",", ":")
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _signature(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), _CONTEXT + payload.encode(), hashlib.sha256).hexdigest()


def sign_link(secret: str, link: ApprovalLink) -> str:
    """The link's token (the URL path segment after `/approve/`)."""
    body = {
        "w": link.workflow_id,
        "f": link.first_run_id,
        "r": link.request_id,
        "a": link.approver,
        "d": link.proposal_digest,
        "e": int(link.expires_at.timestamp()),
    }
    raw = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
    payload = base64.urlsafe_b64encode(raw).decode().rstrip("=")
    return f"{payload}.{_signature(secret, payload)}"


def verify_link(secret: str, token: str) -> ApprovalLink:
    """The link `token` grants, or LinkInvalid (signature checked before anything is decoded)."""
    payload, sep, signature = token.partition(".")
    if not secret or not sep or not hmac.compare_digest(_signature(secret, payload), signature):
        raise LinkInvalid("this approval link is not valid")
    try:
        body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return ApprovalLink(
            workflow_id=str(body["w"]),
            first_run_id=str(body["f"]),
            request_id=str(body["r"]),
            approver=str(body["a"]),
            proposal_digest=str(body["d"]),
            expires_at=datetime.fromtimestamp(int(body["e"]), UTC),
        )
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise LinkInvalid("this approval link is not valid") from None


def link_url(public_url: str, token: str) -> str:
    """The full URL of a link on the gateway at `public_url`."""
    return f"{public_url.rstrip('/')}/approve/{token}"
