"""The 7-day approval timeout on the time-skipping test server: a week passes in milliseconds of real time."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

from devstack.fake_anthropic import Reply
from models.run import SEVEN_DAYS
from tests.conftest import workflow_id
from tests.helpers import pending_approvals
from tools.notes import NoteStore

NOTE = {"title": "Answer", "body": "1200"}


async def timer_durations(handle) -> list[tuple[timedelta, timedelta]]:
    """(configured timeout, workflow time from start to fire) of every timer that fired."""
    history = await handle.fetch_history()
    started = {e.event_id: e for e in history.events if e.HasField("timer_started_event_attributes")}
    out = []
    for e in history.events:
        if e.HasField("timer_fired_event_attributes"):
            s = started[e.timer_fired_event_attributes.started_event_id]
            timeout = s.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
            out.append((timeout, e.event_time.ToDatetime() - s.event_time.ToDatetime()))
    return out


async def test_unanswered_approval_times_out_after_seven_days_and_the_model_is_told(ts_env, ts_worker, fake_llm):
    # Default inputs: approval timeout 7 days, time budget 1800 s (the wait is not the agent's time).
    fake_llm.push(Reply(tool_calls=[("write_note", NOTE)]), Reply(text="Nobody approved, so I did not save it."))
    began = time.monotonic()
    handle = await ts_env.client.start_workflow(
        "AgentLoopWorkflow", {"prompt": "save 1200"}, id=workflow_id("timeout"), task_queue=ts_worker.task_queue
    )
    result = await asyncio.wait_for(handle.result(), 30)
    real_seconds = time.monotonic() - began

    assert result["status"] == "completed", result
    assert result["output"] == "Nobody approved, so I did not save it."
    assert (result["usage"]["llm_calls"], result["usage"]["tool_calls"]) == (2, 1)
    tool_use = fake_llm.requests[1].messages[-2]["content"][0]
    assert tool_use["name"] == "write_note"
    assert fake_llm.requests[1].tool_results() == [
        {
            "type": "tool_result",
            "tool_use_id": tool_use["id"],
            "content": "Not run: approval timed out",
            "is_error": True,
        }
    ]
    assert NoteStore(ts_worker.notes_db).all() == []
    fake_llm.assert_script_consumed()

    # A week of workflow time passed on the approval timer, in a few seconds at most of real time.
    [(timeout, waited)] = await timer_durations(handle)
    assert timeout == timedelta(seconds=SEVEN_DAYS)
    assert waited >= timedelta(days=7)
    assert real_seconds < 5, f"the run took {real_seconds:.1f}s of real time"


async def test_approval_two_days_later_still_runs_the_write(ts_env, ts_worker, fake_llm):
    # Two days is far past the default max_seconds (1800): a person's time does not end the run.
    fake_llm.push(Reply(tool_calls=[("write_note", NOTE)]), Reply(text="Saved."))
    handle = await ts_env.client.start_workflow(
        "AgentLoopWorkflow", {"prompt": "save 1200"}, id=workflow_id("late"), task_queue=ts_worker.task_queue
    )
    [pending] = await pending_approvals(handle)
    assert pending["proposal"] == {"tool": "write_note", "arguments": NOTE}

    await ts_env.sleep(timedelta(days=2))
    status = await handle.query("status")
    assert status["state"] == "waiting_for_approval"
    await handle.signal("approve", {"approver": "alice"})

    result = await asyncio.wait_for(handle.result(), 30)
    assert result["status"] == "completed" and result["output"] == "Saved.", result
    assert [(n.title, n.body) for n in NoteStore(ts_worker.notes_db).all()] == [("Answer", "1200")]
    assert await timer_durations(handle) == []  # the approval timer never fired
