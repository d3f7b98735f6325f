"""The run's progress stream end to end: a pattern-B run with a tool and an approval, read live and after it closed."""

from __future__ import annotations

import asyncio
import dataclasses

from devstack.fake_anthropic import Reply
from models.progress import EVENT_TYPES
from progress.reader import follow_events
from tests.conftest import workflow_id
from tests.helpers import pending_approvals

ANSWER = "Saved a note: 6000 * 0.2 = 1200, as you asked."
EXTRA_EVENTS_PER_STEP = 12
"""Measured: 7.2-8.8 extra history events per step with one live follower (test_history_cost_per_step_is_bounded;
11 once in eight, when `status` queries made the worker complete extra workflow tasks)."""


def script(fake) -> None:
    fake.push(
        Reply(text="Let me compute that first.", tool_calls=[("calculator", {"expression": "6000 * 0.2"})]),
        Reply(tool_calls=[("write_note", {"title": "Answer", "body": "1200"})]),
        Reply(text=ANSWER, chunk_delay=0.1),
    )


async def start_and_follow(client, settings, prefix: str):
    handle = await client.start_workflow(
        "AgentLoopWorkflow",
        {"prompt": "What is 6000 * 0.2? Then save a note.", "approval": {"approvers": ["alice"]}},
        id=workflow_id(prefix),
        task_queue=settings.task_queue,
    )
    events: list[dict] = []

    async def follow() -> None:
        async for event in follow_events(client, handle.id):
            events.append(event)

    follower = asyncio.create_task(follow())
    (request,) = await pending_approvals(handle, timeout=60)
    await handle.signal("approve", {"approver": "alice", "request_id": request["request_id"]})
    result = await handle.result()
    await asyncio.wait_for(follower, timeout=60)
    return handle, result, events


async def test_pattern_b_run_publishes_every_event_in_order(client, worker, fake_llm):
    script(fake_llm)
    handle, result, events = await start_and_follow(client, worker, "progress")
    assert result["status"] == "completed"

    offsets = [e["offset"] for e in events]
    assert offsets == list(range(len(events)))  # from 0, increasing, none repeated or missing
    assert all(e["at"] and e["type"] in EVENT_TYPES for e in events)
    kinds = [e["type"] for e in events if e["type"] != "llm_delta"]
    assert kinds == [
        "llm_started",
        "llm_finished",
        "tool_started",
        "tool_finished",
        "llm_started",
        "llm_finished",
        "approval_requested",
        "approval_decided",
        "tool_started",
        "tool_finished",
        "llm_started",
        "llm_finished",
        "run_finished",
    ]
    by_type = {e["type"]: e for e in reversed(events)}  # the first of each type
    assert by_type["tool_started"]["tool"] == "calculator"
    assert by_type["tool_started"]["arguments"] == {"expression": "6000 * 0.2"}
    assert by_type["tool_finished"]["preview"] == "1200" and by_type["tool_finished"]["is_error"] is False
    assert by_type["approval_requested"]["summary"].startswith("run write_note")
    decided = by_type["approval_decided"]
    assert decided["approved"] is True and decided["approver"] == "alice"
    assert decided["request_id"] == by_type["approval_requested"]["request_id"]
    assert by_type["llm_finished"]["usage"]["output_tokens"] > 0
    assert events[-1]["type"] == "run_finished" and events[-1]["status"] == "completed"
    # The last reply's deltas (between its llm_started and llm_finished) are the answer, in pieces.
    last_start = max(i for i, e in enumerate(events) if e["type"] == "llm_started")
    deltas = [e for e in events[last_start:] if e["type"] == "llm_delta"]
    assert len(deltas) >= 2 and all(d["attempt"] == 1 for d in deltas)
    assert "".join(d["text"] for d in deltas) == result["output"] == ANSWER

    # After the run closed: everything again from offset 0, and from a middle offset exactly the later ones.
    again = [e async for e in follow_events(client, handle.id)]
    assert again == events
    middle = len(events) // 2
    later = [e async for e in follow_events(client, handle.id, middle)]
    assert later == events[middle:]
    fake_llm.assert_script_consumed()


async def history_length(client, workflow_id: str) -> int:
    return len((await client.get_workflow_handle(workflow_id).fetch_history()).events)


async def test_history_cost_per_step_is_bounded(client, settings, fake_llm):
    """Streaming on with a live follower against streaming off with none: extra history events per step."""
    from worker import build_worker

    lengths = {}
    for streaming in (False, True):
        script(fake_llm)
        async with build_worker(client, dataclasses.replace(settings, llm_streaming=streaming)):
            if streaming:
                handle, result, _ = await start_and_follow(client, settings, "cost-on")
            else:
                handle = await client.start_workflow(
                    "AgentLoopWorkflow",
                    {"prompt": "What is 6000 * 0.2? Then save a note.", "approval": {"approvers": ["alice"]}},
                    id=workflow_id("cost-off"),
                    task_queue=settings.task_queue,
                )
                await pending_approvals(handle, timeout=60)
                await handle.signal("approve", {"approver": "alice"})
                result = await handle.result()
        lengths[streaming] = await history_length(client, handle.id)
    steps = result["steps"]
    extra = (lengths[True] - lengths[False]) / steps
    print(f"\nhistory events: streaming off {lengths[False]}, on with a follower {lengths[True]}: {extra:.1f} per step")
    assert 0 < extra <= EXTRA_EVENTS_PER_STEP


async def test_continue_as_new_keeps_one_stream(client, settings, fake_llm, monkeypatch):
    from config.settings import Settings
    from worker import build_worker

    monkeypatch.setenv("HISTORY_MAX_EVENTS", "100")
    calls = 14

    def responder(body):
        done = sum(1 for m in body["messages"] if m["role"] == "assistant")
        if done < calls:
            return Reply(text=f"step {done}", tool_calls=[("calculator", {"expression": f"{done} + 1"})])
        return Reply(text="All sums done.")

    fake_llm.responder = responder
    async with build_worker(client, Settings.from_env()):
        handle = await client.start_workflow(
            "AgentLoopWorkflow",
            {"prompt": "add up", "budget": {"max_steps": 100}},
            id=workflow_id("can"),
            task_queue=settings.task_queue,
        )
        events: list[dict] = []

        async def follow() -> None:
            async for e in follow_events(client, handle.id):
                events.append(e)

        await asyncio.wait_for(follow(), timeout=120)
        result = await handle.result()
        # After the close: the whole stream again, across runs. Reading a closed run is a query, which a
        # worker answers by replaying it, so this stays inside the worker's lifetime.
        again = [e async for e in follow_events(client, handle.id)]
    assert result["status"] == "completed" and result["output"] == "All sums done."
    runs = [w async for w in client.list_workflows(f"WorkflowId = '{handle.id}'")]
    assert len(runs) >= 2, "the run never continued as new"
    assert [e["offset"] for e in events] == list(range(len(events)))
    assert [e["type"] for e in events].count("llm_started") == calls + 1
    assert [e["type"] for e in events].count("tool_finished") == calls
    assert events[-1]["type"] == "run_finished"
    assert again == events
