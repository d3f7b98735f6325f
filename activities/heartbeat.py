"""Heartbeating while awaiting slow work, so Temporal notices a dead worker within the heartbeat timeout."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from temporalio import activity

T = TypeVar("T")

HEARTBEAT_EVERY_SECONDS = 1.0
"""Often enough that a dead worker's activity is retried soon after the workflow's heartbeat timeout."""


async def heartbeating(call: Awaitable[T], beat: Callable[[], None] = activity.heartbeat) -> T:
    """Await `call`, calling `beat` every second meanwhile; if Temporal cancels the activity, the call is cancelled too."""
    task = asyncio.ensure_future(call)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=HEARTBEAT_EVERY_SECONDS)
            if done:
                return task.result()
            beat()
    finally:
        task.cancel()
