"""The gateway's ASGI app: routes, error handling, and its shared state (one Temporal client, settings, tokens)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from temporalio.client import Client, RPCTimeoutOrCancelledError
from temporalio.service import RPCError

from config.gateway import GatewaySettings
from config.settings import Settings
from gateway import approvals, page, runs
from gateway.http import ApiError, caller
from gateway.known_agents import KnownAgents
from gateway.limits import BodyLimit
from gateway.openapi import openapi_document
from gateway.tenants import owned_run
from gateway.tokens import TokenBook
from gateway.usage import read_usage
from models.errors import ConfigError
from progress.caps import FollowerCaps
from progress.sse import run_events_endpoint

log = logging.getLogger("gateway")


async def healthz(request: Request) -> Response:
    """200 while Temporal answers its health check, 503 otherwise."""
    client: Client = request.app.state.client
    try:
        serving = await client.service_client.check_health(timeout=timedelta(seconds=3))
    except (RPCError, RuntimeError):
        serving = False
    return JSONResponse({"status": "serving" if serving else "not_serving"}, status_code=200 if serving else 503)


def run_events(client: Client, settings: GatewaySettings) -> Callable[[Request], Awaitable[Response]]:
    """`GET /v1/runs/{workflow_id}/events`: the run's progress as Server-Sent Events (progress/sse.py), for a token
    of the run's tenant; followers are capped per run and per token (429)."""

    async def get_client() -> Client:
        return client

    caps = FollowerCaps(per_run=settings.followers_per_run, per_token=settings.followers_per_token)
    stream = run_events_endpoint(get_client, caps=caps)

    async def endpoint(request: Request) -> Response:
        who = caller(request)
        await owned_run(client, who, request.path_params["workflow_id"])  # 404 for another tenant's
        request.state.identity = who.identity  # followers are counted per token
        return await stream(request)

    return endpoint


async def openapi(request: Request) -> Response:
    """The OpenAPI document."""
    return JSONResponse(openapi_document())


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return exc.response()


async def _temporal_error(request: Request, exc: Exception) -> Response:
    log.warning("Temporal call failed on %s %s: %s", request.method, request.url.path.split("/approve/")[0], exc)
    return JSONResponse({"detail": f"Temporal did not answer: {exc}"}, status_code=503)


def build_app(client: Client, settings: Settings, tokens: TokenBook, agents: KnownAgents | None = None) -> Starlette:
    """The app; stateless apart from its client, so several may run behind one load balancer.

    `agents`: the workers' agents as read from `settings.agents_file` (None: read here; AgentsFileInvalid on a problem).
    """
    if not settings.gateway.workflow_id_key:
        raise ConfigError(
            "set GATEWAY_ID_SECRET (or APPROVAL_LINK_SECRET): the gateway keys the workflow ids it makes with it, "
            "and every replica needs the same one (e.g. openssl rand -hex 32)"
        )
    routes = [
        Route("/v1/runs", runs.start_run, methods=["POST"]),
        Route("/v1/runs/{workflow_id}", runs.read_run, methods=["GET"]),
        Route("/v1/runs/{workflow_id}/cancel", runs.cancel_run, methods=["POST"]),
        Route("/v1/runs/{workflow_id}/events", run_events(client, settings.gateway), methods=["GET"]),
        Route("/v1/approvals", approvals.list_approvals, methods=["GET"]),
        Route("/v1/runs/{workflow_id}/approvals/{request_id}", approvals.decide_request, methods=["POST"]),
        Route("/approve/{link}", page.show_request, methods=["GET"]),
        Route("/approve/{link}", page.decide_request, methods=["POST"]),
        Route("/v1/usage", read_usage, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(BodyLimit, max_bytes=settings.gateway.max_body_bytes)],  # every route, one place
        exception_handlers={
            ApiError: _api_error,
            RPCError: _temporal_error,
            RPCTimeoutOrCancelledError: _temporal_error,
        },
    )
    app.state.client = client
    app.state.settings = settings
    app.state.tokens = tokens
    app.state.agents = agents if agents is not None else KnownAgents.load(settings.agents_file)
    return app
