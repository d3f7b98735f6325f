"""Runs with local tools, live followers and `status` polls replay, and replay to the stream their followers saw.

A `status` query answered while a local activity's result is on its way makes the worker complete the workflow task
early; the run then learns the result one task late, with that task's polls and signals (workflows/local_steps.py).
Before the fix, a poll accepted there made the run's history unreplayable ("Activity machine does not handle this
event: WorkflowExecutionUpdateAccepted", about one run in 36 here), and reading a closed run again (a replay) gave
other `at` times than its live followers had seen (more than half the runs).
"""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import timedelta
from typing import Any

from devstack.fake_anthropic import Reply
from progress.reader import follow_events
from tests.conftest import workflow_id
from tests.replay_check import assert_replays

ROUNDS_AT_MOST = 6
RUNS_PER_ROUND = 3
FINAL_STATES = {"completed", "failed", "budget_exceeded", "stopped"}


def responder(body: dict[str, Any]) -> Reply:
    """Local tool calls (one, then two in parallel), a write that needs approval, then the answer; streamed."""
    done = sum(1 for m in body["messages"] if m["role"] == "assistant")
    words = "a few words streamed one by one"
    steps = [
        Reply(text=f"compute {words}", tool_calls=[("calculator", {"expression": "6000 * 0.2"})], chunk_delay=0.01),
        Reply(tool_calls=[("write_note", {"title": "Answer", "body": "1200"})]),
        Reply(
            text=words, tool_calls=[("calculator", {"expression": "1 + 1"}), ("calculator", {"expression": "2 + 2"})]
        ),
    ]
    return steps[done] if done < len(steps) else Reply(text=f"done: {words}", chunk_delay=0.01)


async def followed_run(client, task_queue: str) -> tuple[Any, list[dict]]:
    """One run with two live followers (polling as fast as they can) and a `status` poll all along."""
    handle = await client.start_workflow(
        "AgentLoopWorkflow",
        {"prompt": "What is 6000 * 0.2? Then save a note.", "approval": {"approvers": ["alice"]}},
        id=workflow_id("local-steps"),
        task_queue=task_queue,
    )
    seen: list[list[dict]] = [[], []]

    async def follow(events: list[dict]) -> None:
        async for event in follow_events(client, handle.id, poll_cooldown=timedelta(0)):
            events.append(event)

    followers = [asyncio.create_task(follow(events)) for events in seen]
    approved = False
    while True:
        try:
            status = await handle.query("status")
        except Exception:  # before the first workflow task
            status = {"pending_approvals": [], "state": "starting"}
        if status["pending_approvals"] and not approved:
            request_id = status["pending_approvals"][0]["request_id"]
            await handle.signal("approve", {"approver": "alice", "request_id": request_id})
            approved = True
        if status["state"] in FINAL_STATES:
            break
        await asyncio.sleep(0.01)
    assert (await handle.result())["status"] == "completed"
    await asyncio.wait_for(asyncio.gather(*followers), 60)
    assert seen[0] == seen[1]
    return handle, seen[0]


def late_local_results(history) -> int:
    """Local activity markers that ended a workflow task that another followed at once (a task completed early)."""
    events = list(history.events)
    return sum(
        1
        for marker, following in zip(events, events[1:], strict=False)
        if marker.HasField("marker_recorded_event_attributes")
        and marker.marker_recorded_event_attributes.marker_name == "core_local_activity"
        and following.HasField("workflow_task_scheduled_event_attributes")
    )


async def test_runs_with_local_steps_replay_to_the_stream_their_followers_saw(client, settings, fake_llm):
    from worker import build_worker

    fake_llm.responder = responder
    streaming = dataclasses.replace(settings, llm_streaming=True)
    handles, late = [], 0
    for _ in range(ROUNDS_AT_MOST):
        async with build_worker(client, streaming):
            runs = await asyncio.gather(*(followed_run(client, settings.task_queue) for _ in range(RUNS_PER_ROUND)))
        # A fresh worker: reading a closed run replays it.
        async with build_worker(client, streaming):
            for handle, live in runs:
                again = [e async for e in follow_events(client, handle.id)]
                assert again == live, f"{handle.id} reads differently once replayed"
        for handle, _ in runs:
            late += late_local_results(await handle.fetch_history())
        handles += [handle for handle, _ in runs]
        if late >= 3:
            break
    print(f"\n{len(handles)} runs, {late} local results the run learned a task late")
    assert late > 0, "no run learned a local result late: this test proved nothing"
    await assert_replays(client, "tests/test_progress_local_steps.py", [h.id for h in handles])
