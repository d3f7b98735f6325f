"""The progress stream, activity side: text deltas and black-box turns, batched into few signals.

An activity publishes to its own workflow's stream with `WorkflowStreamClient`, whose (publisher id,
sequence) dedup drops a batch the server already took when a signal is retried. Every event carries the
activity's `attempt` (and `activity_id`): a follower that sees a later attempt of the same activity
discards the text of the abandoned one. Consecutive deltas are joined into one event per batch, and an
attempt sends at most `MAX_FLUSHES` batches of text (the interval between them grows), plus one at the end: a
step costs a bounded number of signals however long the reply. Any other event (a black box's `agent_turn`,
`handoff`) goes at once, with the text before it: batching holds back only text (issue 30), and those events
are bounded by the agent's turns. Publishing never fails the activity.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio import activity
from temporalio.contrib.workflow_streams import WorkflowStreamClient

from models.progress import PROGRESS_TOPIC

FIRST_INTERVAL = 0.3
"""Seconds before the first batch: a follower sees text within about this, plus a round trip."""
GROWTH = 1.25
"""Each interval is this much longer than the one before."""
MAX_FLUSHES = 20
"""Batches per attempt before the end (about 14 minutes of streaming at the rates above); then one at the end."""

_current: ContextVar[ProgressPublisher | None] = ContextVar("activity_progress", default=None)


class ProgressPublisher:
    """One attempt's publisher: buffers events, joins text deltas, flushes on a growing interval."""

    def __init__(self, client: WorkflowStreamClient, stamp: dict[str, Any]) -> None:
        self._client = client
        self._topic = client.topic(PROGRESS_TOPIC)
        self._stamp = stamp
        self._text: list[str] = []
        self._flushes = 0
        self._dirty = asyncio.Event()
        self._urgent = asyncio.Event()
        """Set by an event that is not text: the next batch goes now."""

    def text(self, chunk: str) -> None:
        """A piece of the reply's text as the model streamed it."""
        if chunk:
            self._text.append(chunk)
            self._dirty.set()

    def event(self, type_: str, **fields: Any) -> None:
        """Any other event (e.g. `agent_turn`), sent at once; pending text goes first, so the order holds."""
        self._take_text()
        self._topic.publish(self._event(type_, fields))
        self._urgent.set()
        self._dirty.set()

    def _event(self, type_: str, fields: dict[str, Any]) -> dict[str, Any]:
        return {"type": type_, "at": datetime.now(UTC).isoformat(), **self._stamp, **fields}

    def _take_text(self) -> None:
        if self._text:
            self._topic.publish(self._event("llm_delta", {"text": "".join(self._text)}))
            self._text = []

    async def flush(self) -> None:
        """Send what is buffered as one signal; a failure is logged and the batch kept for the next try."""
        self._take_text()
        self._dirty.clear()
        try:
            await self._client.flush()
        except Exception as exc:  # progress is best effort: the activity's result is what counts
            activity.logger.warning("progress events not published yet: %s", exc)

    async def run_flusher(self) -> None:
        """Text on a growing interval, at most MAX_FLUSHES batches in all (then with the next event, or at the end);
        other events at once."""
        interval = FIRST_INTERVAL
        while True:
            await self._dirty.wait()
            if self._flushes < MAX_FLUSHES:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._urgent.wait(), interval)
            else:
                await self._urgent.wait()
            self._urgent.clear()
            await self.flush()
            # Every batch counts, an event's too: text that follows waits longer, so a step's signals stay about
            # as many as before events went at once.
            self._flushes += 1
            interval *= GROWTH


@contextlib.asynccontextmanager
async def publishing(enabled: bool, **stamp: Any) -> AsyncIterator[ProgressPublisher | None]:
    """While inside, `publish_text` and `publish_event` reach this activity's workflow stream (if `enabled`)."""
    if not enabled or not activity.in_activity():
        yield None
        return
    info = activity.info()
    client = WorkflowStreamClient.from_within_activity(
        batch_interval=timedelta(days=1), max_retry_duration=timedelta(seconds=30)
    )
    progress = ProgressPublisher(client, {"attempt": info.attempt, "activity_id": info.activity_id, **stamp})
    token = _current.set(progress)
    flusher = asyncio.create_task(progress.run_flusher())
    try:
        yield progress
    finally:
        _current.reset(token)
        flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flusher
        await progress.flush()  # before the result: the run sees every delta before the step's end


def publish_text(chunk: str) -> None:
    """Stream a piece of model text to the current activity's run (no-op outside `publishing`)."""
    if (progress := _current.get()) is not None:
        progress.text(chunk)


def publish_event(type_: str, **fields: Any) -> None:
    """Publish one event to the current activity's run (no-op outside `publishing`)."""
    if (progress := _current.get()) is not None:
        progress.event(type_, **fields)
