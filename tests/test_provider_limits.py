"""Provider limits across the fleet: model calls go through a task queue per provider whose rate the server
enforces for every worker together, and a 429's retry-after holds this worker's other calls too."""

from __future__ import annotations

import asyncio
import time

import pytest
from temporalio.exceptions import ApplicationError

from activities.cooldown import ProviderCooldown
from config.settings import Settings
from devstack.fake_anthropic import Reply
from models.errors import ConfigError
from tests.conftest import workflow_id

RATE = 2.0
BURST = 8
"""Calls the server may let through at once before its rate holds (buckets of the queue's partitions)."""


async def test_two_workers_together_never_send_more_than_the_fleet_rate(client, settings, fake_llm, worker_processes):
    fake_llm.responder = lambda body: Reply(text="ok")
    for _ in range(2):
        worker_processes(LLM_RATE_LIMITS=f"anthropic={RATE:g}")
    runs = 12
    handles = await asyncio.gather(
        *(
            client.start_workflow(
                "AgentLoopWorkflow", {"prompt": f"hello {i}"}, id=workflow_id("rate"), task_queue=settings.task_queue
            )
            for i in range(runs)
        )
    )
    results = await asyncio.gather(*(h.result() for h in handles))
    assert all(r["status"] == "completed" for r in results)
    stamps = [r.at for r in fake_llm.requests]
    assert len(stamps) == runs
    span = max(stamps) - min(stamps)
    # 12 calls at 2/s: the server's limiter lets at most about RATE (+1 for its bucket) start in any second.
    # The server's limiter holds the queue's rate on average; its token buckets (one per task-queue partition: one
    # on the product's dev server since fair dispatch needed it, four by the server's default) let a burst of a few
    # calls through at first. Measured with four partitions: 12 calls over ~4.9 s, 8 in the first second.
    late = [t for t in stamps if t >= min(stamps) + 1.0]  # after the first second's burst
    assert len(late) / max(span - 1.0, 0.1) <= RATE * 1.5, sorted(round(t - min(stamps), 2) for t in stamps)
    assert span >= (runs - BURST) / RATE, span
    queues: set[str] = set()
    callers: set[str] = set()  # the workers that ran the model calls
    for handle in handles:
        events = (await handle.fetch_history()).events
        scheduled = {
            e.event_id: e.activity_task_scheduled_event_attributes
            for e in events
            if e.activity_task_scheduled_event_attributes.activity_type.name == "call_llm"
        }
        queues |= {a.task_queue.name for a in scheduled.values()}
        callers |= {
            e.activity_task_started_event_attributes.identity
            for e in events
            if e.activity_task_started_event_attributes.scheduled_event_id in scheduled
        }
    assert queues == {f"{settings.task_queue}-llm-anthropic"}
    assert len(callers) == 2, callers  # the rate held for the two workers together, not for each


def test_rate_limits_are_checked_at_start() -> None:
    assert Settings.from_env({"LLM_RATE_LIMITS": "anthropic=5, openai=0.5"}).llm_task_queues == {
        "anthropic": "agents-llm-anthropic",
        "openai": "agents-llm-openai",
    }
    for bad in ("anthropic", "anthropic=0", "anthropic=fast", "=3"):
        with pytest.raises(ConfigError, match="LLM_RATE_LIMITS must be provider=rate pairs"):
            Settings.from_env({"LLM_RATE_LIMITS": bad})


async def test_a_retry_after_holds_this_workers_next_calls_to_that_provider() -> None:
    from datetime import timedelta

    cooldown = ProviderCooldown()

    async def told_to_wait() -> str:
        raise ApplicationError("429", type="AnthropicRateLimited", next_retry_delay=timedelta(seconds=0.4))

    async def fine() -> str:
        return "ok"

    with pytest.raises(ApplicationError):
        await cooldown.run("anthropic", told_to_wait())
    started = time.monotonic()
    assert await cooldown.run("anthropic", fine()) == "ok"
    assert time.monotonic() - started >= 0.35  # waited out the provider's delay
    started = time.monotonic()
    assert await cooldown.run("openai", fine()) == "ok"
    assert time.monotonic() - started < 0.2  # other providers are not held
