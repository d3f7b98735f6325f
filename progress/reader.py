"""Read a run's progress events from any offset, live while it runs and from history after it closed."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.contrib.workflow_streams import PollInput, PollResult, WorkflowStreamClient
from temporalio.service import RPCError, RPCStatusCode

from models.progress import LAST_EVENT, POLL_DEFERRED, POLL_REFUSED, PROGRESS_TOPIC


def payload_of(wire: str) -> Payload:
    """An item's payload from its wire form in a poll's answer: the serialized `Payload`, base64-encoded.

    The stream's own decoder is private to the SDK; this is the same two steps, kept here so an SDK upgrade that
    changes the wire form fails `tests/test_progress*.py` rather than an import (temporalio is pinned exactly:
    docs/progress.md, "Upgrades").
    """
    payload = Payload()
    payload.ParseFromString(base64.b64decode(wire))
    return payload


_POLL = "__temporal_workflow_stream_poll"
"""The stream's poll: an update that waits for news, and a query that answers at once with what is kept."""
COMMITTED_QUERY = "progress_committed_offset"
"""The run's query for the offset before which every event is recorded in its history (workflows/progress.py)."""
FIRST_RETRY_SECONDS = 0.05
"""Pause before reading again when a poll failed while the run was still starting (its first workflow task has not
opened the stream yet) or moving on; it doubles with each failure in a row, up to `RETRY_SECONDS`."""
RETRY_SECONDS = 0.5
DEFERRED_SECONDS = 0.05
"""Pause before polling again when the run put a poll off while a local activity's result reaches it."""
REFUSED_SECONDS = 3.0
"""Pause before polling again when the run (or the server) had no room for another poll: followers wait, `decide`
does not. Meanwhile what the run has recorded is read with queries, which take no room."""


POLL_COOLDOWN = timedelta(milliseconds=200)
"""Pause between polls once caught up: events that come meanwhile wait for it, and each poll costs the run about
five history events; at 100 ms a follower that answered its first poll at once (issue 30) cost a pattern-B step
about 10 history events, at 200 ms about 8.5 (tests/test_progress_stream.py)."""


async def follow_events(
    client: Client,
    workflow_id: str,
    from_offset: int = 0,
    *,
    poll_cooldown: timedelta = POLL_COOLDOWN,
    max_retries: int = 20,
) -> AsyncIterator[dict[str, Any]]:
    """Events of `workflow_id` from `from_offset` on, each `{"offset", "type", "at", ...}`; ends after `run_finished`.

    Follows continue-as-new (one stream across generations). A run that closed without `run_finished`
    (terminated, or recorded before streams) ends the iteration once its retained events are read.
    """
    offset = from_offset
    failures = 0
    stream = WorkflowStreamClient.create(client, workflow_id)
    while True:
        try:
            async for item in stream.subscribe(PROGRESS_TOPIC, offset, poll_cooldown=poll_cooldown):
                failures = 0
                offset = item.offset + 1
                event = {"offset": item.offset, **item.data}
                yield event
                if event.get("type") == LAST_EVENT:
                    return
            return
        except (WorkflowUpdateFailedError, RPCError) as exc:
            if deferred(exc):  # a local activity's result is reaching the run: a moment
                await asyncio.sleep(DEFERRED_SECONDS)
                continue
            if refused(exc):  # for as long as it takes: the run is fine, it only has no room for this poll now
                async for event in read_committed(client, workflow_id, offset):
                    offset = event["offset"] + 1
                    yield event
                    if event.get("type") == LAST_EVENT:
                        return
                await asyncio.sleep(REFUSED_SECONDS)
                continue
            if await no_such_run(client, workflow_id, exc):
                raise  # no run or no namespace by that name: nothing to wait for (was 20 retries, ~9 s)
            # e.g. a poll that reached the run before it opened its stream (its first workflow task)
            failures += 1
            if failures > max_retries:
                raise
            await asyncio.sleep(min(RETRY_SECONDS, FIRST_RETRY_SECONDS * 2 ** (failures - 1)))


async def read_retained(client: Client, workflow_id: str, start: int, stop: int) -> AsyncIterator[dict[str, Any]]:
    """Events `start` to `stop - 1` (a follower catching up on what its gateway's shared reader no longer keeps).

    What the run has surely recorded is read with the stream's query: no update, so no room taken on the run. A
    query answers from the worker's state, which may be a workflow task ahead of the history: the rest, if any, is
    read with polls, whose answers are recorded before they are delivered.
    """
    offset = start
    async for event in read_committed(client, workflow_id, start, stop):
        offset = event["offset"] + 1
        yield event
    if offset >= stop:
        return
    async for event in follow_events(client, workflow_id, offset):
        if event["offset"] >= stop:
            return
        yield event


async def read_committed(
    client: Client, workflow_id: str, start: int, stop: int | None = None
) -> AsyncIterator[dict[str, Any]]:
    """Events from `start` (to `stop - 1`) that the run's history surely holds, read with queries."""
    handle = client.get_workflow_handle(workflow_id)
    try:
        committed = await handle.query(COMMITTED_QUERY, result_type=int)
    except (WorkflowQueryFailedError, RPCError):  # no worker answers now, or one that predates the query
        return
    stop = committed if stop is None else min(stop, committed)
    async for event in _read_by_query(client, workflow_id, start, stop):
        yield event


async def _read_by_query(client: Client, workflow_id: str, start: int, stop: int) -> AsyncIterator[dict[str, Any]]:
    handle = client.get_workflow_handle(workflow_id)
    converter = client.data_converter.payload_converter
    offset = start
    while offset < stop:
        ask = PollInput(topics=[PROGRESS_TOPIC], from_offset=offset)
        result = await handle.query(_POLL, ask, result_type=PollResult)
        for item in result.items:
            if item.offset >= stop:
                return
            yield {"offset": item.offset, **converter.from_payload(payload_of(item.data))}
        if not result.items or result.next_offset <= offset:
            return  # the run keeps no more than this
        offset = result.next_offset


async def stream_end(client: Client, workflow_id: str) -> int:
    """The offset the run's next event will have (how many it has published), from the stream's offset query."""
    return await WorkflowStreamClient.create(client, workflow_id).get_offset()


async def no_such_run(client: Client, workflow_id: str, exc: Exception) -> bool:
    """Whether a poll's NOT_FOUND means there is no run (or no namespace) by that name, not a run that has yet to
    answer polls: asked of the server once, by describing the run."""
    if not (isinstance(exc, RPCError) and exc.status == RPCStatusCode.NOT_FOUND):
        return False
    try:
        await client.get_workflow_handle(workflow_id).describe()
    except RPCError as described:
        return described.status == RPCStatusCode.NOT_FOUND
    return False


def deferred(exc: Exception) -> bool:
    """Whether the run put a poll off for a moment (a local activity's result was on its way)."""
    return isinstance(exc, WorkflowUpdateFailedError) and getattr(exc.cause, "type", None) == POLL_DEFERRED


def refused(exc: Exception) -> bool:
    """Whether a poll failed only for want of room: the run refused it, or the server's in-flight updates are full."""
    if isinstance(exc, WorkflowUpdateFailedError):
        return getattr(exc.cause, "type", None) == POLL_REFUSED
    return isinstance(exc, RPCError) and exc.status == RPCStatusCode.RESOURCE_EXHAUSTED


def discard_abandoned(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The deltas a follower keeps: for each activity, only those of its latest attempt."""
    latest: dict[str, int] = {}
    for event in events:
        if event.get("type") == "llm_delta":
            key = str(event.get("activity_id"))
            latest[key] = max(latest.get(key, 0), int(event.get("attempt", 1)))
    return [
        e
        for e in events
        if e.get("type") != "llm_delta" or int(e.get("attempt", 1)) == latest[str(e.get("activity_id"))]
    ]
