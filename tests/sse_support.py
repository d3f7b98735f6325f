"""Following a run over the gateway's Server-Sent Events route, as an HTTP client would (httpx, real sockets)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class SseEvent:
    """One SSE message: its `id:` and `event:` lines, the parsed `data:` line, and when it arrived."""

    id: int
    event: str
    data: dict[str, Any]
    received: float = field(default_factory=time.time)


@dataclass
class SseFollow:
    """What one GET of the events route delivered."""

    status: int = 0
    events: list[SseEvent] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    ended: bool = False
    """True when the server closed the response (after `run_finished`), False when the follower hung up."""


def _message(lines: list[str]) -> tuple[SseEvent | None, list[str]]:
    fields: dict[str, str] = {}
    comments: list[str] = []
    for line in lines:
        if line.startswith(":"):
            comments.append(line)
        elif ":" in line:
            key, value = line.split(":", 1)
            fields[key] = value.removeprefix(" ")
    if "id" not in fields:
        return None, comments
    return SseEvent(int(fields["id"]), fields["event"], json.loads(fields["data"])), comments


async def follow_sse(
    http: httpx.AsyncClient,
    path: str,
    headers: dict[str, str],
    *,
    until: Callable[[SseEvent], bool] | None = None,
    on_event: Callable[[SseEvent], None] | None = None,
) -> SseFollow:
    """GET `path` and read its events as they come; hang up after the first event `until` accepts."""
    seen = SseFollow()
    async with http.stream("GET", path, headers=headers, timeout=httpx.Timeout(120, read=60)) as response:
        seen.status = response.status_code
        if response.status_code != 200:
            await response.aread()
            return seen
        block: list[str] = []
        async for line in response.aiter_lines():
            if line:
                block.append(line)
                continue
            event, comments = _message(block)
            block = []
            seen.comments += comments
            if event is None:
                continue
            seen.events.append(event)
            if on_event is not None:
                on_event(event)
            if until is not None and until(event):
                return seen
        seen.ended = True
    return seen


def start_following(http: httpx.AsyncClient, path: str, headers: dict[str, str], **kwargs: Any) -> asyncio.Task:
    """`follow_sse` in the background (the run goes on meanwhile); await the task for its `SseFollow`."""
    return asyncio.create_task(follow_sse(http, path, headers, **kwargs))


def check_well_formed(events: list[SseEvent], first: int = 0) -> None:
    """`id:` is the offset, consecutive from `first`; `event:` is the data's type; nothing after `run_finished`."""
    assert [e.id for e in events] == list(range(first, first + len(events))), [e.id for e in events]
    assert all(e.data["offset"] == e.id and e.data["type"] == e.event for e in events)
    assert events[-1].event == "run_finished" and [e.event for e in events].count("run_finished") == 1


def last_reply_deltas(events: list[SseEvent]) -> list[dict[str, Any]]:
    """The deltas of the run's last model reply (between the last llm_started and its llm_finished), of its
    latest attempt only: a follower discards an abandoned attempt's text."""
    start = max(i for i, e in enumerate(events) if e.event == "llm_started")
    end = next(i for i in range(start, len(events)) if events[i].event == "llm_finished")
    deltas = [e.data for e in events[start:end] if e.event == "llm_delta"]
    latest = max((d["attempt"] for d in deltas), default=0)
    return [d for d in deltas if d["attempt"] == latest]


def last_reply_text(events: list[SseEvent]) -> str:
    """The streamed text of the run's last model reply."""
    return "".join(d["text"] for d in last_reply_deltas(events))


@contextlib.asynccontextmanager
async def serving_events(
    client: Any, path: str = "/v1/runs/{workflow_id}/events", **options: Any
) -> AsyncIterator[str]:
    """progress/sse.py's endpoint alone on uvicorn (127.0.0.1, a free port); yields its base URL."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.routing import Route

    from devstack.dev_server import free_port
    from progress.sse import run_events_endpoint

    async def get_client() -> Any:
        return client

    port = free_port()
    app = Starlette(routes=[Route(path, run_events_endpoint(get_client, **options))])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving
