"""SIGTERM (a rollout, a scale-down, `docker compose stop`) lets the in-flight activity finish before exit."""

from __future__ import annotations

import asyncio
import signal

from devstack.dev_server import free_port
from devstack.fake_anthropic import Reply
from telemetry.health import probe
from tests.conftest import workflow_id
from tests.helpers import eventually

SLOW_CALL_SECONDS = 8.0  # long enough that SIGTERM surely lands while the call is open


async def test_sigterm_drains_the_in_flight_activity_then_exits_0(client, fake_llm, settings, worker_processes):
    fake_llm.push(Reply(text="Finished during shutdown.", delay=SLOW_CALL_SECONDS))
    health_port = free_port()
    draining = worker_processes(WORKER_IDENTITY="draining-worker", WORKER_HEALTH_PORT=str(health_port))
    healthz = lambda: asyncio.to_thread(probe, health_port)  # noqa: E731
    await eventually(lambda: _is(healthz, 200), timeout=20)  # polling

    handle = await client.start_workflow(
        "AgentLoopWorkflow", {"prompt": "Take your time."}, id=workflow_id("drain"), task_queue=settings.task_queue
    )
    await eventually(lambda: fake_llm.requests, timeout=30)  # call_llm is in flight on the draining worker
    draining.proc.send_signal(signal.SIGTERM)

    # While it drains, orchestrators are told to stop sending work here.
    await eventually(lambda: _is(healthz, 503), timeout=SLOW_CALL_SECONDS)
    assert fake_llm.requests[0].served == "pending"
    exit_code = await asyncio.to_thread(draining.proc.wait, 60)
    assert exit_code == 0
    assert fake_llm.requests[0].served == "reply"  # answered before the process went away

    worker_processes(WORKER_IDENTITY="next-worker")  # someone must run the rest of the workflow
    result = await asyncio.wait_for(handle.result(), timeout=60)
    assert result["status"] == "completed"
    assert result["output"] == "Finished during shutdown."
    assert result["usage"]["llm_calls"] == 1

    # The history: the call completed on its first attempt, by the worker that was shutting down.
    history = await handle.fetch_history()
    started = [
        e.activity_task_started_event_attributes
        for e in history.events
        if e.HasField("activity_task_started_event_attributes")
    ]
    completed = [
        e.activity_task_completed_event_attributes
        for e in history.events
        if e.HasField("activity_task_completed_event_attributes")
    ]
    assert [(s.identity, s.attempt) for s in started] == [("draining-worker", 1)]
    assert [c.identity for c in completed] == ["draining-worker"]
    assert len(fake_llm.requests) == 1  # never sent again
    fake_llm.assert_script_consumed()


async def _is(healthz, status: int) -> bool:
    return await healthz() == status
