"""Runs over HTTP: start (idempotent), read (status and result), cancel."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError
from temporalio.common import (
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from config.settings import Settings
from gateway.http import ApiError, caller, first_problem, json_body, ok
from gateway.known_agents import KnownAgents
from gateway.models import RunStarted, RunView, StartRun
from gateway.temporal import QUERY_TIMEOUT, describe, status_of
from gateway.tenants import TENANT_MEMO, check_customer, owned_run
from gateway.tokens import Caller
from models.blackbox import BlackBoxInput
from models.hybrid import HybridInput
from models.run import AgentRunInput
from models.search_attributes import TENANT_ID
from models.spend_limits import fairness

INPUT_MODELS: dict[str, type[AgentRunInput]] = {
    "AgentLoopWorkflow": AgentRunInput,
    "BlackBoxAgentWorkflow": BlackBoxInput,
    "HybridAgentWorkflow": HybridInput,
}
"""Each workflow's own input model: the gateway refuses what the workflow would fail on, before starting it."""

REQUEST_DIGEST_MEMO = "gateway_request_sha256"
"""Memo key of the digest of the body that started a run, so a retry with another body is told apart."""


def request_digest(body: StartRun) -> str:
    """SHA-256 of the workflow type and input as sent (canonical JSON)."""
    canonical = json.dumps({"workflow": body.workflow, "input": body.input}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


GATEWAY_IDS = "gw-"
"""Prefix of the workflow ids the gateway makes; a caller's own `workflow_id` may not start with it."""


def workflow_id_for(key: bytes, who: Caller, body: StartRun, idempotency_key: str | None) -> str:
    """The body's id; else one keyed from the caller and its Idempotency-Key (the same key, the same run); else new.

    Keyed with the gateway's secret (HMAC), so nobody can compute another caller's ids to read them or to take
    the id their next start would get.
    """
    if body.workflow_id:
        if body.workflow_id.startswith(GATEWAY_IDS):
            raise ApiError(
                422,
                f"workflow_id: ids starting with {GATEWAY_IDS!r} are the gateway's own; choose another",
                "workflow_id",
            )
        return body.workflow_id
    if idempotency_key:
        message = "\n".join((who.tenant, who.identity, idempotency_key)).encode()
        return f"{GATEWAY_IDS}{hmac.new(key, message, hashlib.sha256).hexdigest()[:32]}"
    return f"{GATEWAY_IDS}{uuid.uuid4().hex}"


def check_input(body: StartRun, agents: KnownAgents) -> None:
    """422 naming the field (`input.budget.max_steps`, `input.agent`) when the workflow would refuse the input."""
    try:
        checked = INPUT_MODELS[body.workflow].model_validate(body.input)
    except ValidationError as exc:
        detail, field = first_problem(exc, "input")
        raise ApiError(422, f"invalid input: {detail}", field) from None
    agents.check(checked)


async def start_run(request: Request) -> Response:
    """`POST /v1/runs`: 201 a new run; 200 the run this key or id already started with this body; 409 another body."""
    who = caller(request, "starter")
    body = await json_body(request, StartRun)
    check_input(body, request.app.state.agents)
    check_customer(
        who, body.input.get("customer_id"), request.app.state.settings.spend_limits, request.app.state.tokens
    )
    key = request.headers.get("idempotency-key") or None
    if key is not None and not (1 <= len(key) <= 200):
        raise ApiError(422, "Idempotency-Key: must be 1 to 200 characters", "Idempotency-Key")
    client: Client = request.app.state.client
    settings: Settings = request.app.state.settings
    workflow_id = workflow_id_for(settings.gateway.workflow_id_key, who, body, key)
    digest = request_digest(body)
    try:
        handle = await client.start_workflow(
            body.workflow,
            body.input,
            id=workflow_id,
            task_queue=settings.task_queue,
            # Never a second run under one id, running or closed: a retried POST finds the first one.
            id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            memo={REQUEST_DIGEST_MEMO: digest, "gateway_started_by": who.identity, TENANT_MEMO: who.tenant},
            search_attributes=TypedSearchAttributes([SearchAttributePair(TENANT_ID, who.tenant)]),
            static_summary=f"started through the gateway by {who.identity} (tenant {who.tenant})",
            priority=fairness(settings.spend_limits, body.input.get("customer_id")),
        )
    except WorkflowAlreadyStartedError:
        return await _existing_run(client, who, workflow_id, digest)
    return ok(RunStarted(workflow_id=workflow_id, run_id=handle.first_execution_run_id or handle.run_id or ""), 201)


async def _existing_run(client: Client, who: Caller, workflow_id: str, digest: str) -> JSONResponse:
    _, description = await describe(client, workflow_id)
    memo = await description.memo()
    if memo.get(REQUEST_DIGEST_MEMO) != digest or memo.get(TENANT_MEMO) != who.tenant:
        raise ApiError(
            409, f"workflow id {workflow_id} is taken by a run started with another body (or not through the gateway)"
        )
    run_id = description.raw_info.first_run_id or description.run_id
    return ok(RunStarted(workflow_id=workflow_id, run_id=run_id))


async def read_run(request: Request) -> Response:
    """`GET /v1/runs/{workflow_id}`: Temporal's status, the run's `status` query, and its result once completed."""
    who = caller(request)
    client: Client = request.app.state.client
    workflow_id = request.path_params["workflow_id"]
    handle, description = await owned_run(client, who, workflow_id)
    result: dict[str, Any] | None = None
    failure: str | None = None
    if description.status == WorkflowExecutionStatus.COMPLETED:
        result = await handle.result(rpc_timeout=QUERY_TIMEOUT)
    elif description.status == WorkflowExecutionStatus.FAILED:
        try:
            await handle.result(rpc_timeout=QUERY_TIMEOUT)
        except WorkflowFailureError as exc:
            failure = str(exc.cause) if exc.cause else str(exc)
    view = RunView(
        workflow_id=workflow_id,
        temporal_status=description.status.name if description.status else None,
        status=await status_of(handle),
        result=result,
        failure=failure,
    )
    return ok(view)


async def cancel_run(request: Request) -> Response:
    """`POST /v1/runs/{workflow_id}/cancel`: 202 once Temporal has the cancellation request; 409 if the run ended."""
    who = caller(request, "starter")
    client: Client = request.app.state.client
    workflow_id = request.path_params["workflow_id"]
    handle, description = await owned_run(client, who, workflow_id)
    if description.status != WorkflowExecutionStatus.RUNNING:
        status = description.status.name.lower() if description.status else "closed"
        raise ApiError(409, f"run {workflow_id} has already ended ({status})")
    try:
        await handle.cancel()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise ApiError(409, f"run {workflow_id} has already ended") from None
        raise
    return JSONResponse({"workflow_id": workflow_id, "cancel_requested": True}, status_code=202)
