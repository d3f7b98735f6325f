"""A SIGKILLed worker's run resumes on another worker within seconds (heartbeat, first retry, sticky timeout)."""

from __future__ import annotations

import asyncio
import os
import time

from devstack.fake_anthropic import Reply
from tests.conftest import workflow_id
from tests.helpers import eventually
from workflows.activity_options import CALL_LLM, RECOVERY_HEARTBEAT_TIMEOUT

RECOVERY_BOUND_SECONDS = 3.0
"""The target: from the kill to the next step's model call, on a worker that was already running."""
SLACK_SECONDS = 2.0
"""Room for a loaded shared machine; the SDK's defaults (10 s heartbeat, 10 s sticky) take over 20 s."""


def test_the_recovery_settings_add_up_to_the_bound():
    first_retry = CALL_LLM.retry_policy.initial_interval if CALL_LLM.retry_policy else None
    assert first_retry is not None
    sticky = 0.5  # WORKER_STICKY_TIMEOUT_MS's default
    assert RECOVERY_HEARTBEAT_TIMEOUT.total_seconds() + first_retry.total_seconds() + sticky < RECOVERY_BOUND_SECONDS


async def test_a_killed_workers_step_resumes_on_another_worker_within_the_bound(
    client, fake_llm, settings, worker_processes
):
    fake_llm.push(
        Reply(tool_calls=[("calculator", {"expression": "1 + 1"})], delay=60),  # the killed worker's call
        Reply(tool_calls=[("calculator", {"expression": "1 + 1"})]),  # the same step, retried on the other
        Reply(text="2"),  # the next step
    )
    workers = {name: worker_processes(WORKER_IDENTITY=name) for name in ("worker-a", "worker-b")}
    handle = await client.start_workflow(
        "AgentLoopWorkflow", {"prompt": "1 + 1?"}, id=workflow_id("recovery"), task_queue=settings.task_queue
    )
    await eventually(lambda: len(fake_llm.requests) == 1, timeout=30)

    async def holder() -> str | None:
        pending = (await handle.describe()).raw_description.pending_activities
        return pending[0].last_worker_identity if pending else None

    running = await eventually(holder, timeout=10)
    workers[running].kill()
    killed_at = time.time()
    result = await asyncio.wait_for(handle.result(), 60)

    assert result["status"] == "completed" and result["output"] == "2"
    recovered = fake_llm.requests[2].at - killed_at
    print(f"recovery: {recovered:.2f} s (bound {RECOVERY_BOUND_SECONDS} s)")
    assert recovered < RECOVERY_BOUND_SECONDS + SLACK_SECONDS, f"the next step started {recovered:.2f} s after the kill"
    identities = {
        e.activity_task_started_event_attributes.identity
        for e in (await handle.fetch_history()).events
        if e.HasField("activity_task_started_event_attributes")
    }
    assert running not in identities  # every attempt recorded was the survivor's (history keeps the last one)
    if os.environ.get("RECOVERY_TIMELINE"):
        for e in (await handle.fetch_history()).events:
            print(f"{e.event_time.ToDatetime().timestamp() - killed_at:+.3f} {e.WhichOneof('attributes')}")
    fake_llm.assert_script_consumed()
