"""`GET /v1/runs/{workflow_id}/events` as Server-Sent Events: a Starlette endpoint the gateway mounts.

    from starlette.routing import Route
    from progress.sse import run_events_endpoint
    Route("/v1/runs/{workflow_id}/events", run_events_endpoint(get_client))

Each event is `id: <offset>`, `event: <type>`, `data: <the event's JSON>`; a `Last-Event-ID` header (or
`?from_offset=`) resumes after that offset; a comment line every `heartbeat_seconds` keeps proxies from
closing an idle stream; the response ends after `run_finished`. Authentication is the gateway's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from temporalio.client import Client

from progress.reader import follow_events

ClientGetter = Callable[[], Awaitable[Client]]
HEARTBEAT_SECONDS = 15.0


def format_event(event: dict[str, Any]) -> str:
    """One SSE message: `id:` is the offset, `event:` the type, `data:` the JSON on one line."""
    return f"id: {event['offset']}\nevent: {event['type']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n"


def resume_offset(request: Request) -> int | None:
    """Where to start: after `Last-Event-ID`, else `?from_offset=`, else 0; None when either is not a number."""
    last = request.headers.get("last-event-id")
    raw = request.query_params.get("from_offset")
    try:
        if last is not None and last.strip():
            return int(last) + 1
        return int(raw) if raw is not None else 0
    except ValueError:
        return None


async def sse_stream(
    client: Client, workflow_id: str, from_offset: int, heartbeat_seconds: float = HEARTBEAT_SECONDS
) -> AsyncIterator[str]:
    """The SSE body: events as they come, a `: heartbeat` comment whenever none came for a while."""
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for event in follow_events(client, workflow_id, from_offset):
                await queue.put(format_event(event))
        except Exception as exc:  # the stream cannot go on: say so in-band, then end it
            await queue.put(f"event: error\ndata: {json.dumps({'error': str(exc)})}\n\n")
        finally:
            await queue.put(None)

    task = asyncio.create_task(pump())
    try:
        yield ": stream open\n\n"
        while True:
            try:
                chunk = await asyncio.wait_for(queue.get(), timeout=heartbeat_seconds)
            except TimeoutError:
                yield ": heartbeat\n\n"
                continue
            if chunk is None:
                return
            yield chunk
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def run_events_endpoint(
    get_client: ClientGetter, *, heartbeat_seconds: float = HEARTBEAT_SECONDS
) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette endpoint (`Route(path, endpoint)`) for a path with a `{workflow_id}` parameter."""

    async def run_events(request: Request) -> Response:
        workflow_id = request.path_params["workflow_id"]
        offset = resume_offset(request)
        if offset is None:
            return JSONResponse({"error": "Last-Event-ID and from_offset must be integers"}, status_code=400)
        client = await get_client()
        try:
            await client.get_workflow_handle(workflow_id).describe()
        except Exception:
            return JSONResponse({"error": f"no run {workflow_id}"}, status_code=404)
        headers = {"cache-control": "no-cache", "x-accel-buffering": "no"}
        body = sse_stream(client, workflow_id, offset, heartbeat_seconds)
        return StreamingResponse(body, media_type="text/event-stream", headers=headers)

    return run_events
