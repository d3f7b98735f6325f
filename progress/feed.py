"""One reader per run in a gateway process, shared by all of that run's followers.

Each follower of a run used to hold its own poll update on the run, and the server admits 10 in-flight updates
per run: a dozen viewers took every slot `decide` needed. Here the first follower of a run starts a `RunFeed`,
whose single reader (`progress.reader.follow_events`: one poll at a time) keeps the latest events in a bounded
buffer and hands each to every attached `Follower`; later followers start from that buffer, and one resuming
below it reads the older events once with the stream's query (no update; what the run may not have recorded yet is
read with polls instead, progress/reader.py `read_retained`). When the last follower leaves, the
reader stops. The feed never waits for a follower: one that lets `room` events pile up is let go, with an
`event: error` saying to resume with Last-Event-ID.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import Any

ReadEvents = Callable[[str, int], AsyncIterator[dict[str, Any]]]
"""(workflow id, from offset) -> the run's events, ending after `run_finished` (`follow_events`, bound to a client)."""

KEEP_EVENTS = 1000
"""Events a feed keeps for followers that join or resume late (a few hundred KB at most: deltas are batched)."""
FOLLOWER_ROOM = 1000
"""Events that may wait for one follower before it is let go as too slow."""


def format_event(event: dict[str, Any]) -> str:
    """One SSE message: `id:` is the offset, `event:` the type, `data:` the JSON on one line."""
    return f"id: {event['offset']}\nevent: {event['type']}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n"


def error_message(text: str) -> str:
    """An in-band SSE error (no `id:`, so the client's Last-Event-ID stays at its last event)."""
    return f"event: error\ndata: {json.dumps({'error': text})}\n\n"


class Follower:
    """One follower's place in a feed: the events waiting for it (at most `room`), then how it ends."""

    def __init__(self, from_offset: int, room: int = FOLLOWER_ROOM) -> None:
        self.from_offset = from_offset
        self.room = room
        self._waiting: deque[str] = deque()
        self._last: str | None = None
        """Set once the feed is done with this follower: "" after `run_finished`, else an error message."""
        self._news = asyncio.Event()

    def offer(self, offset: int, message: str) -> bool:
        """Queue one event; False when the follower fell too far behind (it is then ended with an error)."""
        if offset < self.from_offset or self._last is not None:
            return True
        if len(self._waiting) >= self.room:
            self.end(
                error_message(
                    f"this follower fell behind: {self.room} events waited for it; "
                    "reconnect with Last-Event-ID to resume after the last event it received"
                )
            )
            return False
        self._waiting.append(message)
        self._news.set()
        return True

    def end(self, last: str = "") -> None:
        """No more events: after those waiting, send `last` (if any) and close."""
        if self._last is None:
            self._last = last
            self._news.set()

    async def messages(self) -> AsyncIterator[str]:
        """The follower's SSE messages in order, ending after the feed is done with it."""
        while True:
            if self._waiting:
                yield self._waiting.popleft()
                continue
            if self._last is not None:
                if self._last:
                    yield self._last
                return
            self._news.clear()
            await self._news.wait()


class RunFeed:
    """One run's shared reader and the events it read lately, handed to every follower attached."""

    def __init__(self, workflow_id: str, start: int, read: ReadEvents, keep: int = KEEP_EVENTS) -> None:
        self.workflow_id = workflow_id
        self.next_offset = start
        """Where the reader reads next: every later event reaches attached followers."""
        self.recent: deque[tuple[int, str]] = deque(maxlen=keep)
        self.followers: set[Follower] = set()
        self.task = asyncio.create_task(self._read(read))

    @property
    def oldest(self) -> int:
        """The first offset this feed can hand out (older ones a follower reads itself)."""
        return self.recent[0][0] if self.recent else self.next_offset

    def attach(self, follower: Follower) -> int:
        """Hand `follower` the kept events from its offset on, and all later ones; returns the offset the feed
        serves it from (when above the follower's own, it reads the events in between itself)."""
        served_from = max(follower.from_offset, self.oldest)
        for offset, message in self.recent:
            if offset >= served_from:
                follower.offer(offset, message)
        self.followers.add(follower)
        return served_from

    async def _read(self, read: ReadEvents) -> None:
        last = ""
        try:
            async for event in read(self.workflow_id, self.next_offset):
                message = format_event(event)
                self.recent.append((event["offset"], message))
                self.next_offset = event["offset"] + 1
                for follower in list(self.followers):
                    if not follower.offer(event["offset"], message):
                        self.followers.discard(follower)
        except Exception as exc:  # the stream cannot go on: say so in-band to everyone attached
            last = error_message(str(exc))
        finally:
            for follower in self.followers:
                follower.end(last)


class RunFeeds:
    """The live feeds of one gateway process, by workflow id: a run has one while someone follows it."""

    def __init__(self, read: ReadEvents, keep: int = KEEP_EVENTS, room: int = FOLLOWER_ROOM) -> None:
        self.read = read
        self.keep = keep
        self.room = room
        self.feeds: dict[str, RunFeed] = {}

    def position(self, workflow_id: str) -> int | None:
        """How far this process has read `workflow_id` (None when nobody follows it here)."""
        feed = self.feeds.get(workflow_id)
        return feed.next_offset if feed is not None and not feed.task.done() else None

    def attach(self, workflow_id: str, from_offset: int) -> tuple[RunFeed, Follower, int]:
        """A follower of `workflow_id` from `from_offset`, on the run's feed (started when it has none)."""
        feed = self.feeds.get(workflow_id)
        if feed is None or feed.task.done():  # a feed that ended (its run finished, or it failed) is not reused
            feed = self.feeds[workflow_id] = RunFeed(workflow_id, from_offset, self.read, self.keep)
        follower = Follower(from_offset, self.room)
        return feed, follower, feed.attach(follower)

    async def detach(self, feed: RunFeed, follower: Follower) -> None:
        """`follower` left; the last one to leave stops the run's reader."""
        feed.followers.discard(follower)
        if feed.followers:
            return
        if self.feeds.get(feed.workflow_id) is feed:
            del self.feeds[feed.workflow_id]
        feed.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await feed.task
