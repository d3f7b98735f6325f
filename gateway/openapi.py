"""The OpenAPI 3.1 document of the gateway, built from the pydantic models of its bodies."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from gateway.http import MAX_JSON_DEPTH
from gateway.models import DecisionBody, PendingRequest, Problem, RecordedDecision, RunStarted, RunView, StartRun

SCHEMAS: tuple[type[BaseModel], ...] = (
    StartRun,
    RunStarted,
    RunView,
    DecisionBody,
    PendingRequest,
    RecordedDecision,
    Problem,
)
REF = "#/components/schemas/{model}"


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "Last-Event-ID (or from_offset) is not an integer",
        401: "missing or unknown token",
        403: "the token lacks the role, is not an allowed approver, or names another tenant's customer",
        404: "no such run or request",
        409: "conflict: another body under this key or id, already decided, expired, or the run ended",
        413: "the body is over GATEWAY_MAX_BODY_BYTES (refused unread; the connection is closed)",
        416: "the offset is past the end of the run's stream (`next_offset` says where it ends)",
        422: (
            "invalid body or input, an agent the workers do not have included "
            f"(or JSON nested deeper than {MAX_JSON_DEPTH} levels); `field` names it"
        ),
        429: "too many followers of this run, or event streams of this token, on this gateway process",
        503: "Temporal (or the run's worker) does not answer",
    }
    return {str(c): _json(_ref(Problem), text[c]) for c in codes}


def _op(summary: str, responses: dict[str, Any], body: type[BaseModel] | None = None, **extra: Any) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": responses, **extra}
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(body)}}}
    return op


def _param(name: str, where: str = "path", required: bool = True) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required, "schema": {"type": "string"}}


def _run_paths(run_id: dict[str, Any]) -> dict[str, Any]:
    """Start, read, cancel and follow runs."""
    return {
        "/v1/runs": {
            "post": _op(
                "Start a run; the same Idempotency-Key (or workflow_id) with the same body returns the same run",
                {
                    "201": _json(_ref(RunStarted), "started"),
                    "200": _json(_ref(RunStarted), "already started"),
                    **_errors(401, 403, 409, 413, 422),
                },
                StartRun,
                parameters=[_param("Idempotency-Key", "header", False)],
            )
        },
        "/v1/runs/{workflow_id}": {
            "get": _op(
                "A run's Temporal status, status query and result",
                {"200": _json(_ref(RunView), "the run"), **_errors(401, 404)},
                parameters=[run_id],
            )
        },
        "/v1/runs/{workflow_id}/cancel": {
            "post": _op(
                "Cancel a run",
                {"202": {"description": "cancellation requested"}, **_errors(401, 403, 404, 409)},
                parameters=[run_id],
            )
        },
        "/v1/runs/{workflow_id}/events": {
            "get": _op(
                "The run's progress as Server-Sent Events (id: offset; resume with Last-Event-ID; ends after run_finished)",
                {"200": {"description": "text/event-stream"}, **_errors(400, 401, 404, 416, 429)},
                parameters=[run_id],
            )
        },
    }


def _approval_paths(run_id: dict[str, Any]) -> dict[str, Any]:
    """Pending requests and decisions by token."""
    return {
        "/v1/approvals": {
            "get": _op(
                "Pending requests across runs that the caller may decide",
                {"200": _json({"type": "array", "items": _ref(PendingRequest)}, "pending requests"), **_errors(401)},
            )
        },
        "/v1/usage": {
            "get": _op(
                "Spend limits of the caller's tenant: spend, reserved, cap and remainder of each open window",
                {"200": _json({"type": "object"}, "`{tenant, limits_configured, limits: [...]}`"), **_errors(401)},
            )
        },
        "/v1/runs/{workflow_id}/approvals/{request_id}": {
            "post": _op(
                "Decide a request as the token's identity (through the run's validated `decide` update)",
                {
                    "200": _json(_ref(RecordedDecision), "the recorded decision"),
                    **_errors(401, 403, 404, 409, 413, 422, 503),
                },
                DecisionBody,
                parameters=[run_id, _param("request_id")],
            )
        },
    }


def _page_paths() -> dict[str, Any]:
    """The approval page of a signed link, and the health check."""
    return {
        "/approve/{link}": {
            "get": _op(
                "HTML page of one request, from a signed approval link",
                {
                    "200": {"description": "the page"},
                    "403": {"description": "link not valid"},
                    "409": {"description": "decided or expired"},
                },
                parameters=[_param("link")],
                security=[],
            ),
            "post": _op(
                "The page's form: decide as the link's approver",
                {
                    "200": {"description": "decided"},
                    "403": {"description": "link not valid"},
                    "409": {"description": "decided or expired"},
                    "413": _json(_ref(Problem), "the form is over GATEWAY_MAX_BODY_BYTES"),
                },
                parameters=[_param("link")],
                security=[],
            ),
        },
        "/healthz": {
            "get": _op(
                "200 while Temporal answers",
                {"200": {"description": "serving"}, "503": {"description": "Temporal unreachable"}},
                security=[],
            )
        },
    }


def openapi_document() -> dict[str, Any]:
    """Every route, its bodies, and its status codes."""
    schemas: dict[str, Any] = {}
    for model in SCHEMAS:
        schema = model.model_json_schema(ref_template=REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    run_id = _param("workflow_id")
    paths = {**_run_paths(run_id), **_approval_paths(run_id), **_page_paths()}
    return {
        "openapi": "3.1.0",
        "info": {"title": "durable-agents gateway", "version": "1"},
        "paths": paths,
        "components": {"schemas": schemas, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
    }
