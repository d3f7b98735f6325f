"""Read a run's progress events from any offset, live while it runs and from history after it closed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.contrib.workflow_streams import WorkflowStreamClient
from temporalio.service import RPCError

from models.progress import LAST_EVENT, PROGRESS_TOPIC

RETRY_SECONDS = 0.5
"""Pause before reading again when a poll failed while the run was still starting or moving on."""


async def follow_events(
    client: Client,
    workflow_id: str,
    from_offset: int = 0,
    *,
    poll_cooldown: timedelta = timedelta(milliseconds=100),
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
        except (WorkflowUpdateFailedError, RPCError):
            # e.g. a poll that reached the run before it opened its stream (its first workflow task)
            failures += 1
            if failures > max_retries:
                raise
            await asyncio.sleep(RETRY_SECONDS)


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
