"""The `send_notification` activity: tell someone a run finished, exactly once per idempotency key."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
from pathlib import Path

import httpx
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.tls import tls_context
from config.settings import Settings
from models.hybrid import NotificationReceipt, NotificationRequest

WEBHOOK_TIMEOUT_SECONDS = 10.0


def append_once(path: Path, request: NotificationRequest) -> bool:
    """Append one JSON line unless a line with this idempotency key exists; True when appended.

    An exclusive lock makes check-and-append atomic across worker processes sharing the file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # Created 0600: notifications carry run outputs.
    with open(os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600), "a+", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            f.seek(0)
            for line in f:
                try:
                    if json.loads(line).get("idempotency_key") == request.idempotency_key:
                        return False
                except (json.JSONDecodeError, AttributeError):
                    continue  # a foreign or torn line never blocks a notification
            f.seek(0, 2)
            f.write(json.dumps(request.model_dump(mode="json"), sort_keys=True) + "\n")
            f.flush()
            return True
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def url_origin(url: str) -> str:
    """Scheme and host only: a webhook URL's path or query may carry a token, and receipts land in history."""
    parsed = httpx.URL(url)
    return f"{parsed.scheme}://{parsed.host}"


class NotifyActivities:
    """Delivers notifications to the webhook in NOTIFY_WEBHOOK_URL, or else to the NOTIFY_OUTBOX file."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    @activity.defn(name="send_notification")
    async def send_notification(self, request: NotificationRequest) -> NotificationReceipt:
        """Deliver once: the outbox skips a known key; the webhook gets an `Idempotency-Key` header to dedupe on."""
        url = self._settings.notify_webhook_url
        if url:
            return await self._post(url, request)
        path = Path(self._settings.notify_outbox)
        appended = await asyncio.to_thread(append_once, path, request)
        return NotificationReceipt(channel="outbox", destination=str(path), duplicate=not appended)

    async def _post(self, url: str, request: NotificationRequest) -> NotificationReceipt:
        async with httpx.AsyncClient(timeout=WEBHOOK_TIMEOUT_SECONDS, verify=tls_context()) as http:
            response = await http.post(
                url, json=request.model_dump(mode="json"), headers={"Idempotency-Key": request.idempotency_key}
            )
        if response.status_code == 409:  # the receiver already has this key
            return NotificationReceipt(channel="webhook", destination=url_origin(url), duplicate=True)
        if response.status_code >= 400:
            retryable = response.status_code in (408, 429) or response.status_code >= 500
            raise ApplicationError(
                f"webhook answered HTTP {response.status_code}", type="WebhookError", non_retryable=not retryable
            )
        return NotificationReceipt(channel="webhook", destination=url_origin(url))
