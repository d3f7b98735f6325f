"""`GET /v1/runs/{workflow_id}/events` as Server-Sent Events: a Starlette endpoint the gateway mounts.

    from starlette.routing import Route
    from progress.sse import run_events_endpoint
    Route("/v1/runs/{workflow_id}/events", run_events_endpoint(get_client))

Each event is `id: <offset>`, `event: <type>`, `data: <the event's JSON>`; a `Last-Event-ID` header (or
`?from_offset=`) resumes after that offset; a comment line every `heartbeat_seconds` keeps proxies from
closing an idle stream; the response ends after `run_finished`. Authentication is the gateway's; it may put
the caller's identity in `request.state.identity` for the per-token cap.

All followers of a run in this process share one reader (progress/feed.py). Refusals: 400 an offset that is
not a number, 404 no such run, 416 an offset past the stream's end, 429 too many followers (of the run, or of
the token), each as `{"detail": "..."}`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send
from temporalio.client import Client

from progress.caps import FollowerCaps, Seat
from progress.feed import KEEP_EVENTS, RunFeeds, error_message, format_event
from progress.reader import follow_events, read_retained, stream_end

__all__ = ["format_event", "resume_offset", "run_events_endpoint"]

ClientGetter = Callable[[], Awaitable[Client]]
HEARTBEAT_SECONDS = 15.0
END_CHECK_SECONDS = 5.0
"""How long the past-the-end check waits for the run's answer (a worker answers it): without one in time the
follower is let in, and waits with heartbeats like any follower of a run no worker serves."""


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


def refuse(status: int, detail: str, **extra: Any) -> Response:
    """A refusal in the gateway's shape: one line of JSON with `detail`."""
    return JSONResponse({"detail": detail, **extra}, status_code=status)


async def with_heartbeats(messages: AsyncIterator[str], seconds: float) -> AsyncGenerator[str, None]:
    """`messages`, opened with a comment and with a `: heartbeat` comment whenever none came for `seconds`."""
    yield ": stream open\n\n"
    pending: asyncio.Future[str] = asyncio.ensure_future(anext(messages))
    try:
        while True:
            done, _ = await asyncio.wait({pending}, timeout=seconds)  # waits without cancelling the read
            if not done:
                yield ": heartbeat\n\n"
                continue
            try:
                message = pending.result()
            except StopAsyncIteration:
                return
            yield message
            pending = asyncio.ensure_future(anext(messages))
    finally:
        pending.cancel()
        with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
            await pending


class FollowerResponse(StreamingResponse):
    """The SSE response of one follower: however it ends (even before its first byte), its body is closed, which
    detaches it from the run's feed, and its seat under the caps is given back."""

    def __init__(self, body: AsyncGenerator[str, None], seat: Seat) -> None:
        headers = {"cache-control": "no-cache", "x-accel-buffering": "no"}
        super().__init__(body, media_type="text/event-stream", headers=headers)
        self.follower_body = body
        self.seat = seat

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.seat.release()
            await self.follower_body.aclose()


def run_events_endpoint(
    get_client: ClientGetter,
    *,
    heartbeat_seconds: float = HEARTBEAT_SECONDS,
    caps: FollowerCaps | None = None,
    keep_events: int = KEEP_EVENTS,
) -> Callable[[Request], Awaitable[Response]]:
    """A Starlette endpoint (`Route(path, endpoint)`) for a path with a `{workflow_id}` parameter; its runs' feeds
    (each keeping `keep_events` for late followers) and follower counts are this endpoint's own (one per process)."""
    endpoint = _RunEvents(get_client, heartbeat_seconds, caps if caps is not None else FollowerCaps(), keep_events)
    return endpoint.run_events  # a bound method: Starlette calls it with the request (an object would be ASGI)


class _RunEvents:
    """One `/events` endpoint's state: its runs' feeds and its follower seats."""

    def __init__(self, get_client: ClientGetter, heartbeat_seconds: float, limits: FollowerCaps, keep: int) -> None:
        self._get_client = get_client
        self._heartbeat_seconds = heartbeat_seconds
        self._limits = limits
        self._feeds = RunFeeds(self._read, keep=keep)

    async def _read(self, workflow_id: str, from_offset: int) -> AsyncIterator[dict[str, Any]]:
        async for event in follow_events(await self._get_client(), workflow_id, from_offset):
            yield event

    async def _follow(self, client: Client, workflow_id: str, offset: int) -> AsyncGenerator[str, None]:
        """This follower's messages: any it must catch up on by itself, then the feed's."""
        feed, follower, served_from = self._feeds.attach(workflow_id, offset)
        try:
            try:
                async for event in read_retained(client, workflow_id, offset, served_from):
                    yield format_event(event)
            except Exception as exc:
                yield error_message(str(exc))
                return
            async for message in follower.messages():
                yield message
        finally:
            await self._feeds.detach(feed, follower)

    async def _body(self, client: Client, workflow_id: str, offset: int) -> AsyncGenerator[str, None]:
        messages = self._follow(client, workflow_id, offset)
        beats = with_heartbeats(messages, self._heartbeat_seconds)
        try:
            async for chunk in beats:
                yield chunk
        finally:  # closed in order: the heartbeats stop reading, then the follower leaves its feed
            await beats.aclose()
            await messages.aclose()

    async def run_events(self, request: Request) -> Response:
        """Answer one follower: a refusal (400, 429, or the run's), or its stream of events."""
        workflow_id = request.path_params["workflow_id"]
        offset = resume_offset(request)
        if offset is None:
            return refuse(400, "Last-Event-ID and from_offset must be integers")
        seat = self._limits.admit(workflow_id, getattr(request.state, "identity", None))
        if isinstance(seat, str):
            return refuse(429, seat)
        try:
            client = await self._get_client()
            refusal = await check_run(client, self._feeds, workflow_id, offset)
        except BaseException:
            seat.release()
            raise
        if refusal is not None:
            seat.release()
            return refusal
        return FollowerResponse(self._body(client, workflow_id, offset), seat)


async def check_run(client: Client, feeds: RunFeeds, workflow_id: str, offset: int) -> Response | None:
    """404 for no such run, 416 for an offset past the end of its stream (None: follow it)."""
    try:
        await client.get_workflow_handle(workflow_id).describe()
    except Exception:
        return refuse(404, f"no run {workflow_id}")
    known = feeds.position(workflow_id)
    if offset == 0 or (known is not None and offset <= known):
        return None  # there is no need to ask the run
    try:
        end = await asyncio.wait_for(stream_end(client, workflow_id), END_CHECK_SECONDS)
    except Exception:  # no worker answered in time, or the run has no stream: following will say more
        return None
    if offset > end:
        detail = (
            f"offset {offset} is past the end of the stream: its next event will be {end}; resume from at most {end}"
        )
        return refuse(416, detail, next_offset=end)
    return None
