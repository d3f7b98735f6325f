"""The gateway's few conversations with Temporal: find a run, ask its status, decide through `decide`."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.client import (
    Client,
    RPCTimeoutOrCancelledError,
    WorkflowExecutionDescription,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowQueryFailedError,
    WorkflowQueryRejectedError,
    WorkflowUpdateFailedError,
)
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from gateway.http import ApiError
from models.approval import gateway_may_decide

QUERY_TIMEOUT = timedelta(seconds=5)
UPDATE_PATIENCE = timedelta(seconds=5)
"""How long a decision waits on the `decide` update before it goes by signal. A run with no room for another
in-flight update answers RESOURCE_EXHAUSTED, which the SDK's client retries for about 15 s before it gives up: the
person who clicked approve would wait that long. A decision sent both ways counts once (the run ignores a second
decision on a request), and the signal path reads the outcome back from `status`."""

REFUSAL_STATUS = {"unknown_request": 404, "not_an_approver": 403, "already_decided": 409, "expired": 409}
"""How the `decide` update's refusals (DecisionRefused's reason) reach an HTTP caller."""


async def describe(client: Client, workflow_id: str) -> tuple[WorkflowHandle[Any, Any], WorkflowExecutionDescription]:
    """The run's handle and description; 404 when no run has this id."""
    handle = client.get_workflow_handle(workflow_id)
    try:
        return handle, await handle.describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise ApiError(404, f"no run with workflow id {workflow_id!r}") from None
        raise


async def status_of(handle: WorkflowHandle[Any, Any]) -> dict[str, Any] | None:
    """The run's `status` query, or None when no worker answers in time."""
    try:
        status: dict[str, Any] = await handle.query("status", rpc_timeout=QUERY_TIMEOUT)
        return status
    except (RPCError, RPCTimeoutOrCancelledError, WorkflowQueryFailedError, WorkflowQueryRejectedError, TimeoutError):
        return None


SIGNAL_WAIT = timedelta(seconds=10)
"""How long a decision sent by signal (the update path was full) may take to show in the run's status."""


async def pending_request(
    handle: WorkflowHandle[Any, Any], description: WorkflowExecutionDescription, request_id: str
) -> dict[str, Any]:
    """The open request `request_id` of a running run; 404 when the run never opened it, 409 when it is closed."""
    workflow_id = handle.id
    if description.status != WorkflowExecutionStatus.RUNNING:
        ended = description.status.name.lower() if description.status else "closed"
        raise ApiError(409, f"run {workflow_id} has ended ({ended}): its requests can no longer be decided")
    status = await status_of(handle)
    if status is None:
        raise ApiError(503, f"run {workflow_id} does not answer its status query (is a worker polling?)")
    for pending in status.get("pending_approvals", []):
        if pending["request_id"] == request_id:
            if datetime.fromisoformat(pending["expires_at"]) <= datetime.now(UTC):
                raise ApiError(409, f"request {request_id} expired at {pending['expires_at']}")
            return dict(pending)
    for decided in status.get("decided_approvals", []):
        if decided["request_id"] == request_id:
            if decided["via"] == "timeout":
                raise ApiError(409, f"request {request_id} expired (nobody decided in time; it counts as rejected)")
            verdict = "approved" if decided["approved"] else "rejected"
            raise ApiError(409, f"request {request_id} was already {verdict} by {decided['approver']}")
    raise ApiError(404, f"run {workflow_id} has no pending request {request_id!r}")


def check_approver(pending: dict[str, Any], approver: str) -> None:
    """403 unless the request lists `approver` or `*` (the run applies the same rule: `gateway_may_decide`)."""
    if not gateway_may_decide(pending["approvers"], approver):
        listed = ", ".join(pending["approvers"]) or "no one: the request lists no approvers"
        raise ApiError(
            403, f"approver {approver!r} is not allowed to decide {pending['request_id']} (allowed: {listed})"
        )


async def decide(
    handle: WorkflowHandle[Any, Any],
    description: WorkflowExecutionDescription,
    request_id: str,
    *,
    approver: str,
    approved: bool,
    comment: str,
) -> dict[str, Any]:
    """Decide a pending request as `approver`, whom the gateway authenticated; 403 / 404 / 409 with the reason.

    Nothing is sent for a request that is not pending. The run itself enforces the approver rule on what is
    sent (`authenticated_by: gateway`), so no ordering of requests gets past it. The validated update is the
    path; when the run has no room for another in-flight update, the same decision goes by signal instead.
    """
    pending = await pending_request(handle, description, request_id)
    check_approver(pending, approver)
    payload = {
        "request_id": request_id,
        "approved": approved,
        "approver": approver,
        "comment": comment,
        "authenticated_by": "gateway",
    }
    try:
        async with asyncio.timeout(UPDATE_PATIENCE.total_seconds()):
            decision: dict[str, Any] = await handle.execute_update("decide", payload)
        return decision
    except (TimeoutError, RPCTimeoutOrCancelledError):  # the SDK turns the timeout's cancel into the latter
        pass  # no room for the update yet (or a slow run): the signal below, counted once either way
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        if isinstance(cause, ApplicationError) and cause.type == "DecisionRefused":
            reason = cause.details[0] if cause.details else "refused"
            message = cause.message
            if reason == "expired":
                message = f"request {request_id} expired (nobody decided in time; it counts as rejected)"
            raise ApiError(REFUSAL_STATUS.get(str(reason), 422), message) from None
        raise
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:  # the run closed between the query and the update
            raise ApiError(409, f"run {handle.id} has ended: its requests can no longer be decided") from None
        if exc.status != RPCStatusCode.RESOURCE_EXHAUSTED:
            raise
    return await _decide_by_signal(handle, payload)


async def _decide_by_signal(handle: WorkflowHandle[Any, Any], payload: dict[str, Any]) -> dict[str, Any]:
    """The decision as an `approve`/`reject` signal (same rule in the run), then its outcome from the status query."""
    request_id, approver = payload["request_id"], payload["approver"]
    signal = {"request_id": request_id, "approver": approver, "authenticated_by": "gateway"}
    if payload["approved"]:
        await handle.signal("approve", {**signal, "comment": payload["comment"]})
    else:
        await handle.signal("reject", {**signal, "reason": payload["comment"]})
    deadline = datetime.now(UTC) + SIGNAL_WAIT
    while datetime.now(UTC) < deadline:
        status = await status_of(handle) or {}
        for decided in status.get("decided_approvals", []):
            if decided["request_id"] == request_id:
                if decided["approver"] != approver or decided.get("authenticated_by") != "gateway":
                    raise ApiError(409, f"request {request_id} was already decided by {decided['approver']}")
                return {**decided, "comment": payload["comment"]}
        for ignored in reversed(status.get("ignored_decisions", [])):
            if ignored.get("request_id") == request_id and ignored.get("approver") == approver:
                raise ApiError(409, f"request {request_id}: {ignored['reason']}")
        await asyncio.sleep(0.1)
    raise ApiError(503, f"the decision on {request_id} was sent but the run has not shown it yet; read the run")
