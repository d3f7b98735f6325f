"""A pattern-B run and a hybrid run followed over the gateway's SSE route: from the start, resumed with
`Last-Event-ID` from the middle while the run goes on, and again once the run has completed.

Real uvicorn on 127.0.0.1, a real worker on the dev server, the real anthropic client streaming from the fake.
"""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from devstack.dev_server import free_port
from devstack.fake_anthropic import Reply
from devstack.scripted_model import respond
from progress.reader import follow_events
from tests.conftest import workflow_id
from tests.gateway_support import auth, gateway_client, running_gateway, with_gateway, write_tokens
from tests.helpers import eventually
from tests.sse_support import (
    SseEvent,
    check_well_formed,
    follow_sse,
    last_reply_deltas,
    last_reply_text,
    start_following,
)

ANSWER = "Saved a note: 6000 * 0.2 = 1200, as you asked, and nothing else was changed."
PROMPT = "My income is 6000 a month; plan a budget and decide whether to invest 500 a month."


@pytest.fixture
def gateway(client, tmp_path):
    """A factory: `async with gateway(settings) as url` serves the gateway for those settings on a free port."""
    tokens = write_tokens(tmp_path / "tokens.toml")

    def serve(settings):
        return running_gateway(client, with_gateway(settings, free_port()), tokens)

    return serve


def slow(reply: Reply) -> Reply:
    """The reply streamed word by word, 30 ms apart: several batches of deltas, not one."""
    return dataclasses.replace(reply, chunk_delay=0.03) if reply.text else reply


async def approve_all(handle, count: int) -> None:
    """Approve `count` requests one after the other, as they come."""
    decided: set[str] = set()
    for _ in range(count):

        async def fresh():
            pending = (await handle.query("status"))["pending_approvals"]
            return [p for p in pending if p["request_id"] not in decided]

        request = (await eventually(fresh, 60))[0]
        decided.add(request["request_id"])
        await handle.signal("approve", {"approver": "alice", "request_id": request["request_id"]})


async def follow_three_ways(client, url: str, handle, approvals: int) -> dict:
    """One follower from the start; another that hangs up mid-run and resumes with Last-Event-ID; then, after
    the run closed, the whole stream again. Returns what each saw and the result."""
    path = f"/v1/runs/{handle.id}/events"
    async with gateway_client(url) as http:
        live = start_following(http, path, auth("reader"))
        # The second follower hangs up at the first approval request, while the run waits for a person.
        early = await asyncio.wait_for(
            follow_sse(http, path, auth("reader"), until=lambda e: e.event == "approval_requested"), 60
        )
        assert not early.ended and early.events[-1].event == "approval_requested"
        resume_after = early.events[-1].id
        resumed = start_following(http, path, {**auth("reader"), "Last-Event-ID": str(resume_after)})
        await approve_all(handle, approvals)
        result = await asyncio.wait_for(handle.result(), 120)
        seen = await asyncio.wait_for(live, 60)
        later = await asyncio.wait_for(resumed, 60)
        after = await asyncio.wait_for(follow_sse(http, path, auth("reader")), 60)  # the run has completed
    return {"result": result, "live": seen, "early": early, "later": later, "after": after, "cut": resume_after}


def check_followers(seen: dict) -> list[SseEvent]:
    live, early, later, after = seen["live"], seen["early"], seen["later"], seen["after"]
    assert live.status == later.status == after.status == 200
    assert live.ended and later.ended and after.ended  # each response ended by itself after run_finished
    events = live.events
    check_well_formed(events)
    # The resumed stream holds exactly the later events, the same bytes as the live one's.
    assert seen["cut"] > 0 and later.events[0].id == seen["cut"] + 1
    assert [(e.id, e.data) for e in later.events] == [(e.id, e.data) for e in events if e.id > seen["cut"]]
    assert [(e.id, e.data) for e in early.events + later.events] == [(e.id, e.data) for e in events]
    # Following the run once it has completed: all of its events, then the end.
    assert [(e.id, e.data) for e in after.events] == [(e.id, e.data) for e in events]
    return events


async def test_pattern_b_run_followed_over_sse_live_resumed_and_after(client, worker, fake_llm, gateway):
    fake_llm.push(
        Reply(text="Let me compute that first.", tool_calls=[("calculator", {"expression": "6000 * 0.2"})]),
        Reply(tool_calls=[("write_note", {"title": "Answer", "body": "1200"})]),
        Reply(text=ANSWER, chunk_delay=0.05),
    )
    handle = await client.start_workflow(
        "AgentLoopWorkflow",
        {"prompt": "What is 6000 * 0.2? Then save a note.", "approval": {"approvers": ["alice"]}},
        id=workflow_id("sse-b"),
        task_queue=worker.task_queue,
    )
    async with gateway(worker) as url:
        seen = await follow_three_ways(client, url, handle, approvals=1)
    result = seen["result"]
    assert result["status"] == "completed" and result["output"] == ANSWER
    events = check_followers(seen)
    assert [e.event for e in events if e.event != "llm_delta"] == [
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
    assert len(last_reply_deltas(events)) >= 2  # streamed in several batches over the ~0.7 s of the reply
    assert last_reply_text(events) == result["output"]
    # The reader over the Temporal client sees the same stream as the HTTP follower.
    assert [e async for e in follow_events(client, handle.id)] == [e.data for e in events]
    fake_llm.assert_script_consumed()


async def test_hybrid_run_followed_over_sse_live_resumed_and_after(client, settings, fake_llm, gateway, tmp_path):
    from worker import build_worker

    fake_llm.responder = lambda body: slow(respond(body))
    hybrid = dataclasses.replace(settings, notify_outbox=str(tmp_path / "outbox.jsonl"))
    async with build_worker(client, hybrid), gateway(hybrid) as url:
        handle = await client.start_workflow(
            "HybridAgentWorkflow",
            {"prompt": PROMPT, "approval": {"approvers": ["alice"]}},
            id=workflow_id("sse-h"),
            task_queue=hybrid.task_queue,
        )
        seen = await follow_three_ways(client, url, handle, approvals=2)
        # (queries answer a closed run's reads: they need the worker, so these come before it stops)
        read = [e async for e in follow_events(client, handle.id)]
        assert (await handle.query("status"))["pending_approvals"] == []
    result = seen["result"]
    assert result["status"] == "completed", result
    events = check_followers(seen)
    stages = [e.data["stage"] for e in events if e.event == "stage"]
    assert stages[0].startswith("stage 1") and stages[-1].startswith("stage 5"), stages
    assert [s.split(":")[0] for s in stages] == sorted(s.split(":")[0] for s in stages)
    turns = {e.data["agent"] for e in events if e.event == "agent_turn"}
    assert turns == {"budget", "analysis"}  # the two specialists, as black boxes
    approvals = [e.event for e in events if e.event.startswith("approval_")]
    assert approvals == ["approval_requested", "approval_decided"] * 2
    answer = result["output"]["answer"]
    assert "6000 * 0.2 - 500 = 700" in answer
    assert last_reply_text(events) == answer
    assert read == [e.data for e in events]
