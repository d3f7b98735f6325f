"""The gateway's few conversations with Temporal: find a run, ask its status, decide through `decide`."""

from __future__ import annotations

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

QUERY_TIMEOUT = timedelta(seconds=5)

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


async def pending_request(client: Client, workflow_id: str, request_id: str) -> dict[str, Any] | None:
    """The open request `request_id` of a running run (None when it is not pending); 404 / 409 / 503 otherwise."""
    handle, description = await describe(client, workflow_id)
    if description.status != WorkflowExecutionStatus.RUNNING:
        ended = description.status.name.lower() if description.status else "closed"
        raise ApiError(409, f"run {workflow_id} has ended ({ended}): its requests can no longer be decided")
    status = await status_of(handle)
    if status is None:
        raise ApiError(503, f"run {workflow_id} does not answer its status query (is a worker polling?)")
    for pending in status.get("pending_approvals", []):
        if pending["request_id"] == request_id:
            return dict(pending)
    return None


def check_decidable(pending: dict[str, Any], approver: str) -> None:
    """The gateway's own rules on top of the run's: no approvers listed means no one; an expired request is closed."""
    if not pending["approvers"]:
        raise ApiError(
            403, f"request {pending['request_id']} lists no approvers: no one may approve it through the gateway"
        )
    if datetime.fromisoformat(pending["expires_at"]) <= datetime.now(UTC):
        raise ApiError(409, f"request {pending['request_id']} expired at {pending['expires_at']}")


async def decide(
    client: Client, workflow_id: str, request_id: str, *, approver: str, approved: bool, comment: str
) -> dict[str, Any]:
    """Decide through the validated update as `approver`; its refusal becomes 403 / 404 / 409 with the run's reason."""
    pending = await pending_request(client, workflow_id, request_id)
    if pending is not None:
        check_decidable(pending, approver)
    payload = {"request_id": request_id, "approved": approved, "approver": approver, "comment": comment}
    try:
        decision: dict[str, Any] = await client.get_workflow_handle(workflow_id).execute_update("decide", payload)
        return decision
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
            raise ApiError(409, f"run {workflow_id} has ended: its requests can no longer be decided") from None
        raise
