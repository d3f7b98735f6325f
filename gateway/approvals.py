"""Approvals over HTTP: the requests a caller may decide, across its tenant's runs, and deciding one as the token.

The listing reads visibility only (one query, no call per run): each waiting run keeps its open requests in
its memo (`pending_approvals`, workflows/handlers.py), which the listing returns with each run.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from temporalio.client import Client

from gateway.http import caller, json_body, ok
from gateway.models import DecisionBody, PendingRequest, RecordedDecision
from gateway.temporal import decide
from gateway.tenants import owned_run, visible_runs
from gateway.tokens import Caller
from models.approval import PENDING_MEMO, gateway_may_decide

WAITING_RUNS = 'AgentStatus="waiting_for_approval" AND ExecutionStatus="Running"'
MAX_RUNS = 1000
"""Waiting runs one listing looks at (visibility pages through them)."""


def may_decide(who: Caller, approvers: list[str]) -> bool:
    """Through the gateway: an approver token, and the request lists its identity or `*`; an empty list: no one."""
    return who.may("approver") and gateway_may_decide(approvers, who.identity)


async def list_approvals(request: Request) -> Response:
    """`GET /v1/approvals`: the pending requests of the caller's tenant that it may decide, oldest run first."""
    who = caller(request, "approver")
    client: Client = request.app.state.client
    scope = visible_runs(who)
    query = f"{scope} AND {WAITING_RUNS}" if scope else WAITING_RUNS
    found: list[dict[str, Any]] = []
    async for execution in client.list_workflows(query, limit=MAX_RUNS):
        memo = await execution.memo()
        for pending in memo.get(PENDING_MEMO) or []:
            if may_decide(who, pending.get("approvers", [])):
                found.append(dict(pending, workflow_id=execution.id))
    found.reverse()  # visibility lists the newest run first
    return ok([PendingRequest.model_validate(p) for p in found])


async def decide_request(request: Request) -> Response:
    """`POST /v1/runs/{workflow_id}/approvals/{request_id}`: 200 the recorded decision; 403 / 404 / 409 with the reason."""
    who = caller(request, "approver")
    body = await json_body(request, DecisionBody)
    handle, description = await owned_run(request.app.state.client, who, request.path_params["workflow_id"])
    decision = await decide(
        handle,
        description,
        request.path_params["request_id"],
        approver=who.identity,
        approved=body.approved,
        comment=body.comment,
    )
    return ok(RecordedDecision.model_validate(decision))
