"""Heartbeating while awaiting slow work, so Temporal notices a dead worker within the heartbeat timeout."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from temporalio import activity

from models.budget import spend_in
from models.run import Usage

T = TypeVar("T")

DEFAULT_HEARTBEAT_SECONDS = 1.0
"""How often to beat when the activity has no heartbeat timeout (or outside an activity)."""
MIN_HEARTBEAT_SECONDS = 0.1
MAX_HEARTBEAT_SECONDS = 10.0
"""Bounds: a tiny timeout must not make a busy loop, and a long one must still let cancellation arrive soon."""


def heartbeat_interval() -> float:
    """A third of this activity's heartbeat timeout (so two beats may be lost before it expires), bounded."""
    timeout = activity.info().heartbeat_timeout if activity.in_activity() else None
    if not timeout:
        return DEFAULT_HEARTBEAT_SECONDS
    return min(max(timeout.total_seconds() / 3, MIN_HEARTBEAT_SECONDS), MAX_HEARTBEAT_SECONDS)


async def heartbeating(call: Awaitable[T], beat: Callable[[], None] = activity.heartbeat) -> T:
    """Await `call`, calling `beat` every `heartbeat_interval()` meanwhile; if Temporal cancels the activity, the call is cancelled too."""
    every = heartbeat_interval()
    task = asyncio.ensure_future(call)
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=every)
            if done:
                return task.result()
            beat()
    finally:
        task.cancel()


def carried_spend() -> Usage:
    """The spend earlier attempts of this activity reported in their last heartbeat (nothing on a first attempt).

    Temporal hands an attempt the previous attempt's last heartbeat details: an attempt that paid for model calls
    and then failed is counted by the next one, which reports the cumulative total.
    """
    if not activity.in_activity():
        return Usage()
    return spend_in(activity.info().heartbeat_details) or Usage()
