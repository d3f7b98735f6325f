"""The heartbeat interval follows the activity's own heartbeat timeout."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta

import pytest
from temporalio.testing import ActivityEnvironment

from activities.heartbeat import (
    DEFAULT_HEARTBEAT_SECONDS,
    MAX_HEARTBEAT_SECONDS,
    MIN_HEARTBEAT_SECONDS,
    heartbeat_interval,
    heartbeating,
)


def _env(heartbeat_timeout: timedelta | None) -> ActivityEnvironment:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, heartbeat_timeout=heartbeat_timeout)
    return env


async def _interval() -> float:
    return heartbeat_interval()


def test_outside_an_activity_the_default_applies():
    assert heartbeat_interval() == DEFAULT_HEARTBEAT_SECONDS


@pytest.mark.parametrize(
    ("timeout", "expected"),
    [
        (timedelta(seconds=9), 3.0),
        (timedelta(seconds=10), 10 / 3),
        (None, DEFAULT_HEARTBEAT_SECONDS),
        (timedelta(0), DEFAULT_HEARTBEAT_SECONDS),
        (timedelta(milliseconds=30), MIN_HEARTBEAT_SECONDS),
        (timedelta(minutes=10), MAX_HEARTBEAT_SECONDS),
    ],
)
async def test_a_third_of_the_heartbeat_timeout_bounded(timeout, expected):
    assert await _env(timeout).run(_interval) == pytest.approx(expected)


async def test_heartbeating_beats_at_the_derived_interval():
    beats: list[float] = []
    loop = asyncio.get_running_loop()

    async def slow() -> str:
        await asyncio.sleep(0.55)
        return "done"

    async def activity_body() -> str:
        return await heartbeating(slow(), lambda: beats.append(loop.time()))

    # 0.3 s timeout: a beat every 0.1 s, so about five during the call (the default would give none).
    assert await _env(timedelta(seconds=0.3)).run(activity_body) == "done"
    assert len(beats) >= 3
