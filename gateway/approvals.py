"""Approvals over HTTP: the requests a caller may decide, across runs, and deciding one as the token's identity."""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from temporalio.client import Client

from gateway.http import caller, json_body, ok
from gateway.models import DecisionBody, PendingRequest, RecordedDecision
from gateway.temporal import decide, status_of
from gateway.tokens import Caller

WAITING_RUNS = 'AgentStatus="waiting_for_approval" AND ExecutionStatus="Running" AND TaskQueue="{task_queue}"'
"""Runs of the gateway's own task queue (whose workers answer the status query) that wait for someone."""
MAX_RUNS = 1000
"""Waiting runs one listing looks at (visibility pages through them; each answers one status query)."""
QUERY_CONCURRENCY = 16


def may_decide(who: Caller, approvers: list[str]) -> bool:
    """Through the gateway: an approver token, and the request lists its identity or `*`; an empty list: no one."""
    return who.may("approver") and ("*" in approvers or who.identity in approvers)


async def _pending_of(client: Client, workflow_id: str, gate: asyncio.Semaphore) -> list[dict[str, Any]]:
    async with gate:
        status = await status_of(client.get_workflow_handle(workflow_id))
    return [dict(p, workflow_id=workflow_id) for p in (status or {}).get("pending_approvals", [])]


async def list_approvals(request: Request) -> Response:
    """`GET /v1/approvals`: every pending request across waiting runs that the caller may decide, oldest run first."""
    who = caller(request)
    client: Client = request.app.state.client
    query = WAITING_RUNS.format(task_queue=request.app.state.settings.task_queue)
    ids = [execution.id async for execution in client.list_workflows(query, limit=MAX_RUNS)]
    gate = asyncio.Semaphore(QUERY_CONCURRENCY)
    found = await asyncio.gather(*(_pending_of(client, wid, gate) for wid in reversed(ids)))
    visible = [
        PendingRequest.model_validate(p) for pending in found for p in pending if may_decide(who, p["approvers"])
    ]
    return ok(list(visible))


async def decide_request(request: Request) -> Response:
    """`POST /v1/runs/{workflow_id}/approvals/{request_id}`: 200 the recorded decision; 403 / 404 / 409 with the reason."""
    who = caller(request, "approver")
    body = await json_body(request, DecisionBody)
    decision = await decide(
        request.app.state.client,
        request.path_params["workflow_id"],
        request.path_params["request_id"],
        approver=who.identity,
        approved=body.approved,
        comment=body.comment,
    )
    return ok(RecordedDecision.model_validate(decision))
