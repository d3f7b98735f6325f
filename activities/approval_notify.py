"""The `notify_approval` activity: announce an opened approval request to APPROVAL_WEBHOOK_URL, once per request.

The POST carries an `Idempotency-Key` that is the same on every attempt and every worker (activities are
at-least-once: a worker that dies after the receiver answered makes another worker post again), and one
signed gateway link per listed approver.
"""

from __future__ import annotations

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.approval_links import ApprovalLink, link_url, proposal_digest, sign_link
from activities.notify import url_origin
from activities.tls import tls_context
from config.gateway import GatewaySettings
from models.approval_notice import ApprovalNotice, ApprovalNoticeReceipt

WEBHOOK_TIMEOUT_SECONDS = 5.0


def notice_body(settings: GatewaySettings, notice: ApprovalNotice) -> dict[str, object]:
    """The JSON the webhook receives: the request, and a link per named approver (`*` names nobody)."""
    digest = proposal_digest(notice.kind, notice.summary, notice.proposal)
    links = [
        {
            "approver": approver,
            "url": link_url(
                settings.public_url,
                sign_link(
                    settings.link_secret,
                    ApprovalLink(
                        notice.workflow_id, notice.first_run_id, notice.request_id, approver, digest, notice.expires_at
                    ),
                ),
            ),
        }
        for approver in notice.approvers
        if approver != "*"
    ]
    return {
        **notice.model_dump(mode="json", exclude={"first_run_id"}),
        "idempotency_key": notice.idempotency_key,
        "links": links,
    }


class ApprovalNotifyActivities:
    """Posts approval notices when APPROVAL_WEBHOOK_URL is set; otherwise does nothing (and says so)."""

    def __init__(self, settings: GatewaySettings) -> None:
        self._settings = settings

    @activity.defn(name="notify_approval")
    async def notify_approval(self, notice: ApprovalNotice) -> ApprovalNoticeReceipt:
        """One POST per request; 5xx, 408 and 429 are retried by Temporal, a 409 means the receiver has it."""
        url = self._settings.webhook_url
        if not url:
            return ApprovalNoticeReceipt(sent=False)
        body = notice_body(self._settings, notice)
        async with httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT_SECONDS, verify=tls_context()) as http:
            response = await http.post(url, json=body, headers={"Idempotency-Key": notice.idempotency_key})
        links = len(body["links"])  # type: ignore[arg-type]
        if response.status_code == 409:
            return ApprovalNoticeReceipt(sent=True, destination=url_origin(url), links=links, duplicate=True)
        if response.status_code >= 400:
            retryable = response.status_code in (408, 429) or response.status_code >= 500
            raise ApplicationError(
                f"approval webhook answered HTTP {response.status_code}",
                type="WebhookError",
                non_retryable=not retryable,
            )
        return ApprovalNoticeReceipt(sent=True, destination=url_origin(url), links=links)
