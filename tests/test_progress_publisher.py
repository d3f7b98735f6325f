"""The activity-side publisher (activities/progress_publisher.py): text is batched, other events go at once."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from activities.progress_publisher import FIRST_INTERVAL, MAX_FLUSHES, ProgressPublisher


class RecordingStream:
    """Stands in for WorkflowStreamClient: each flush is one batch (one signal), recorded with its time."""

    def __init__(self) -> None:
        self.pending: list[dict[str, Any]] = []
        self.batches: list[tuple[float, list[dict[str, Any]]]] = []

    def topic(self, name: str) -> RecordingStream:
        return self

    def publish(self, value: dict[str, Any]) -> None:
        self.pending.append(value)

    async def flush(self) -> None:
        if self.pending:
            self.batches.append((asyncio.get_running_loop().time(), self.pending))
            self.pending = []


@contextlib.asynccontextmanager
async def publisher(flushes_done: int = 0):
    stream = RecordingStream()
    progress = ProgressPublisher(stream, {"attempt": 1, "activity_id": "1"})  # type: ignore[arg-type]
    progress._flushes = flushes_done
    flusher = asyncio.create_task(progress.run_flusher())
    try:
        yield progress, stream
    finally:
        flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flusher


async def test_text_waits_for_its_batch():
    async with publisher() as (progress, stream):
        started = asyncio.get_running_loop().time()
        progress.text("Hello")
        progress.text(" there")
        await asyncio.sleep(FIRST_INTERVAL / 2)
        assert stream.batches == []
        await asyncio.sleep(FIRST_INTERVAL)
    ((sent_at, items),) = stream.batches
    assert sent_at - started >= FIRST_INTERVAL
    assert [(e["type"], e["text"]) for e in items] == [("llm_delta", "Hello there")]


async def test_an_agent_turn_goes_at_once_with_the_text_before_it():
    async with publisher() as (progress, stream):
        started = asyncio.get_running_loop().time()
        progress.text("thinking")
        progress.event("agent_turn", agent="budget", turn=1, last="calculate_budget")
        await asyncio.sleep(0.05)
        ((sent_at, items),) = stream.batches
    assert sent_at - started < FIRST_INTERVAL / 3
    assert [e["type"] for e in items] == ["llm_delta", "agent_turn"]
    assert items[1]["agent"] == "budget" and items[1]["attempt"] == 1


async def test_events_still_go_at_once_after_the_text_batches_are_spent():
    async with publisher(flushes_done=MAX_FLUSHES) as (progress, stream):
        progress.text("long reply")
        await asyncio.sleep(FIRST_INTERVAL * 1.5)
        assert stream.batches == []  # text now waits for the next event or the end
        progress.event("handoff", agent="budget", target="analysis")
        await asyncio.sleep(0.05)
    ((_, items),) = stream.batches
    assert [e["type"] for e in items] == ["llm_delta", "handoff"]
