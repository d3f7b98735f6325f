"""Many followers of one run: one poll per gateway process, caps, and polls that end by themselves (issue 29).

Each follower of `GET /v1/runs/{id}/events` used to hold its own poll update on the run, and the server admits
10 in-flight updates per run: a dozen viewers made every approval fail, and polls whose follower had left stayed
in flight for as long as the run waited.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from datetime import timedelta
from urllib.parse import urlsplit

import httpx
import pytest
from temporalio.client import WorkflowUpdateFailedError, WorkflowUpdateStage
from temporalio.contrib.workflow_streams import PollInput, PollResult
from temporalio.service import RPCError

from devstack.dev_server import free_port
from devstack.fake_anthropic import Reply
from models.progress import MAX_POLLS_IN_FLIGHT, POLL_REFUSED, POLL_WAIT, PROGRESS_TOPIC
from progress.feed import Follower, RunFeeds
from tests.conftest import workflow_id
from tests.gateway_support import (
    TOKENS,
    WebhookSink,
    auth,
    close_runs,
    gateway_client,
    running_gateway,
    with_gateway,
    write_tokens,
)
from tests.helpers import eventually, pending_approvals
from tests.replay_check import assert_replays
from tests.sse_support import SseEvent, serving_events, start_following

NOTE = {"title": "Answer", "body": "1200"}
POLL = "__temporal_workflow_stream_poll"


# --- the run's side: polls end by themselves, and take at most a few of the run's update slots ---------------


async def start_poll(handle, from_offset: int):
    """A follower's poll of the run's progress: accepted (waiting for news), or refused (its result raises)."""
    return await handle.start_update(
        POLL,
        PollInput(topics=[PROGRESS_TOPIC], from_offset=from_offset),
        wait_for_stage=WorkflowUpdateStage.ACCEPTED,
        result_type=PollResult,
    )


def note(n: int) -> Reply:
    """The model asks to save note `n`: a tool call that waits for approval."""
    return Reply(tool_calls=[("write_note", {"title": f"Note {n}", "body": str(n)})])


async def polls_in_flight(handle) -> int:
    """Poll updates the run accepted and has not answered yet, as its history records them."""
    accepted, answered = set(), set()
    for event in (await handle.fetch_history()).events:
        if event.HasField("workflow_execution_update_accepted_event_attributes"):
            attributes = event.workflow_execution_update_accepted_event_attributes
            if attributes.accepted_request.input.name == POLL:
                accepted.add(attributes.accepted_request.meta.update_id)
        elif event.HasField("workflow_execution_update_completed_event_attributes"):
            answered.add(event.workflow_execution_update_completed_event_attributes.meta.update_id)
    return len(accepted - answered)


async def test_a_poll_nobody_answers_returns_empty_after_the_bound(ts_env, ts_worker, fake_llm):
    fake_llm.push(note(1))
    handle = await ts_env.client.start_workflow(
        "AgentLoopWorkflow", {"prompt": "save 1"}, id=workflow_id("bound"), task_queue=ts_worker.task_queue
    )
    await pending_approvals(handle)  # the run waits (up to 7 days) and publishes nothing meanwhile
    end = await handle.query("__temporal_workflow_stream_offset", result_type=int)
    poll = await start_poll(handle, end)

    await ts_env.sleep(POLL_WAIT + timedelta(seconds=1))
    result = await asyncio.wait_for(poll.result(), 10)
    assert result.items == [] and result.next_offset == end  # nothing new; the follower polls again from there
    assert await polls_in_flight(handle) == 0
    history = await handle.fetch_history()
    timers = [e.timer_started_event_attributes for e in history.events if e.HasField("timer_started_event_attributes")]
    assert [t.start_to_fire_timeout.ToTimedelta() for t in timers].count(POLL_WAIT) == 1

    fake_llm.push(Reply(text="Saved."))
    await handle.signal("approve", {"approver": "alice"})
    assert (await asyncio.wait_for(handle.result(), 30))["status"] == "completed"
    await assert_replays(ts_env.client, "tests/test_followers.py", [handle.id])  # the timer is in its history


# --- the gateway: one reader per run, approvals unaffected, caps, offsets past the end ----------------------


@pytest.fixture
def sink():
    with WebhookSink() as receiver:
        yield receiver


@pytest.fixture
async def gw_worker(client, settings, sink):
    """A worker whose approval requests are announced with links to a gateway on a free port."""
    from worker import build_worker

    gw_settings = with_gateway(settings, free_port(), webhook_url=sink.url)
    async with build_worker(client, gw_settings):
        yield gw_settings


@pytest.fixture
def gateway(client, gw_worker, tmp_path):
    """A factory: `async with gateway(**caps) as http` serves the gateway with those follower caps."""
    tokens = write_tokens(tmp_path / "tokens.toml")

    @contextlib.asynccontextmanager
    async def serve(**caps):
        settings = dataclasses.replace(gw_worker, gateway=dataclasses.replace(gw_worker.gateway, **caps))
        async with running_gateway(client, settings, tokens) as url, gateway_client(url) as http:
            yield http

    return serve


async def start_run(client, settings, prefix: str):
    return await client.start_workflow(
        "AgentLoopWorkflow",
        {"prompt": "save notes", "approval": {"approvers": ["alice", "bob"]}},
        id=workflow_id(prefix),
        task_queue=settings.task_queue,
    )


async def waiting_for(handle, request_id: str) -> None:
    async def pending():
        return [p["request_id"] for p in (await handle.query("status"))["pending_approvals"]] == [request_id]

    await eventually(pending, 30)


async def timed(call) -> tuple[httpx.Response, float]:
    began = time.monotonic()
    response = await call
    return response, time.monotonic() - began


async def test_fifty_followers_share_one_poll_and_approvals_go_through_at_once(
    client, gw_worker, gateway, sink, fake_llm
):
    fake_llm.push(note(1), note(2), note(3), note(4))
    handle = await start_run(client, gw_worker, "fifty")
    await waiting_for(handle, "req-1")
    path = f"/v1/runs/{handle.id}/events"
    async with gateway() as http:
        seen: list[list[SseEvent]] = [[] for _ in range(50)]
        identities = list(TOKENS)  # 10 followers for each of 5 tokens: under the per-token cap of 20
        followers = [start_following(http, path, auth(identities[i % 5]), on_event=seen[i].append) for i in range(50)]

        def all_saw(request_id: str) -> bool:
            return all(
                any(e.event == "approval_requested" and e.data["request_id"] == request_id for e in mine)
                for mine in seen
            )

        await eventually(lambda: all_saw("req-1"), 30)
        assert await polls_in_flight(handle) <= 1  # one reader for all fifty

        route = f"/v1/runs/{handle.id}/approvals/req-1"
        decided, took = await timed(http.post(route, json={"approved": True}, headers=auth("bob")))
        assert decided.status_code == 200, decided.text
        assert took < 1.0, f"the approval took {took:.2f}s"

        await waiting_for(handle, "req-2")
        notice = await eventually(
            lambda: next((n for n in sink.delivered.values() if n["request_id"] == "req-2"), None)
        )
        link = urlsplit(next(x["url"] for x in notice["links"] if x["approver"] == "bob")).path
        page, took = await timed(http.post(link, data={"decision": "approve", "comment": "ok"}))
        assert page.status_code == 200 and "Approved" in page.text, page.text
        assert took < 1.0, f"the approval through the link took {took:.2f}s"

        await waiting_for(handle, "req-3")
        await eventually(lambda: all_saw("req-3"), 30)  # every follower was fed all along
        assert len({tuple((e.id, e.data["type"]) for e in mine) for mine in seen}) == 1  # the same events each
        for follower in followers:  # everyone hangs up
            follower.cancel()
        await asyncio.gather(*followers, return_exceptions=True)

        # The reader's last poll ends with the next event, and no reader polls again.
        decided = await http.post(f"/v1/runs/{handle.id}/approvals/req-3", json={"approved": True}, headers=auth("bob"))
        assert decided.status_code == 200, decided.text
        await waiting_for(handle, "req-4")
    assert await polls_in_flight(handle) == 0
    # Ten updates at once, the server's whole in-flight allowance: each is answered (refused by the run's
    # validator: no such request), none turned away for want of room.
    payload = {"request_id": "req-99", "approved": True, "approver": "bob", "comment": ""}
    outcomes = await asyncio.gather(
        *(handle.execute_update("decide", payload) for _ in range(10)), return_exceptions=True
    )
    assert all(isinstance(o, WorkflowUpdateFailedError) for o in outcomes), outcomes
    assert not [o for o in outcomes if isinstance(o, RPCError)]
    await close_runs(handle)


async def test_the_run_admits_a_few_polls_at_once_and_decide_still_goes_through(client, worker, fake_llm):
    fake_llm.push(note(1), Reply(text="Saved."))
    handle = await client.start_workflow(
        "AgentLoopWorkflow", {"prompt": "save 1"}, id=workflow_id("cap"), task_queue=worker.task_queue
    )
    await pending_approvals(handle)
    far = await handle.query("__temporal_workflow_stream_offset", result_type=int) + 1000  # no news comes there
    polls = [await start_poll(handle, far) for _ in range(MAX_POLLS_IN_FLIGHT)]
    fifth = await start_poll(handle, far)  # a refused update is answered at once: with its failure
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await asyncio.wait_for(fifth.result(), 10)
    assert refused.value.cause.type == POLL_REFUSED
    decision = {"request_id": "req-1", "approved": True, "approver": "alice", "comment": ""}
    assert (await handle.execute_update("decide", decision))["approver"] == "alice"
    assert (await asyncio.wait_for(handle.result(), 30))["status"] == "completed"
    for poll in polls:  # the run released them as it closed
        assert (await asyncio.wait_for(poll.result(), 10)).items == []


async def status_of(http: httpx.AsyncClient, path: str, headers: dict[str, str]) -> tuple[int, str]:
    """The status of a GET of the events route, and its body when it is not a stream."""
    async with http.stream("GET", path, headers=headers) as response:
        if response.status_code == 200:
            return 200, ""
        return response.status_code, (await response.aread()).decode()


async def test_followers_beyond_the_caps_are_429_and_offsets_past_the_end_are_416(client, gw_worker, gateway, fake_llm):
    fake_llm.push(note(1))
    handle = await start_run(client, gw_worker, "caps")
    await waiting_for(handle, "req-1")
    path = f"/v1/runs/{handle.id}/events"
    async with gateway(followers_per_run=3, followers_per_token=2) as http:
        end = await handle.query("__temporal_workflow_stream_offset", result_type=int)
        for offset in (end + 1, end + 5):
            for headers, query in (({"Last-Event-ID": str(offset - 1)}, ""), ({}, f"?from_offset={offset}")):
                status, body = await status_of(http, path + query, {**auth("carol"), **headers})
                assert status == 416 and f"its next event will be {end}" in body, body
        assert (await status_of(http, path, {**auth("carol"), "Last-Event-ID": str(end - 1)}))[0] == 200

        first = [start_following(http, path, auth("alice")) for _ in range(2)]
        first.append(start_following(http, path, auth("bob")))
        await asyncio.sleep(1.0)  # all three are in
        status, body = await status_of(http, path, auth("alice"))
        assert status == 429 and "alice already follows 2 streams" in body, body
        status, body = await status_of(http, path, auth("carol"))
        assert status == 429 and "already has 3 followers" in body, body

        first[0].cancel()  # one of alice's followers leaves: its seat is free again

        async def carol_admitted() -> bool:
            return (await status_of(http, path, auth("carol")))[0] == 200

        await eventually(carol_admitted, 10)
        for follower in first:
            follower.cancel()
        await asyncio.gather(*first, return_exceptions=True)
    await close_runs(handle)


# --- the shared reader, without a server -----------------------------------------------------------------


def scripted_reader(count: int, gate: asyncio.Event | None = None):
    """A `ReadEvents` that yields events 0..count-1 (all, or those past the start), then waits for `gate`."""

    async def read(workflow_id: str, from_offset: int):
        for offset in range(from_offset, count):
            yield {"offset": offset, "type": "llm_delta", "text": f"word {offset} "}
            await asyncio.sleep(0)
        await (gate or asyncio.Event()).wait()

    return read


async def drain(follower: Follower, expect: int) -> list[str]:
    messages = []
    async for message in follower.messages():
        messages.append(message)
        if len(messages) == expect:
            break
    return messages


async def test_a_slow_follower_is_let_go_without_stalling_the_others():
    feeds = RunFeeds(scripted_reader(50), keep=100, room=5)
    feed, slow, _ = feeds.attach("run", 0)
    _, quick, _ = feeds.attach("run", 0)
    got = await asyncio.wait_for(drain(quick, 50), 5)  # the slow one reads nothing meanwhile
    assert [m.split("\n")[0] for m in got] == [f"id: {n}" for n in range(50)]
    left = [m async for m in slow.messages()]  # what waited for it, then why it was let go, then the end
    assert [m.split("\n")[0] for m in left[:5]] == [f"id: {n}" for n in range(5)]
    assert left[5].startswith("event: error\n") and "Last-Event-ID" in left[5] and len(left) == 6
    assert feed.followers == {quick}
    await feeds.detach(feed, slow)
    await feeds.detach(feed, quick)  # the last one leaves: the reader stops
    assert feed.task.cancelled() and feeds.feeds == {}


async def test_late_followers_start_from_the_kept_events_and_below_them_read_the_rest_themselves():
    feeds = RunFeeds(scripted_reader(30), keep=10, room=100)
    feed, first, _ = feeds.attach("run", 0)
    await asyncio.wait_for(drain(first, 30), 5)
    assert feeds.position("run") == 30 and feed.oldest == 20
    _, inside, served_from = feeds.attach("run", 25)
    assert served_from == 25 and [m.split("\n")[0] for m in await drain(inside, 5)] == [
        f"id: {n}" for n in range(25, 30)
    ]
    _, below, served_from = feeds.attach("run", 3)
    assert served_from == 20  # offsets 3..19 are this follower's to read (by query); the feed serves 20 on
    assert (await drain(below, 1))[0].startswith("id: 20\n")
    _, ahead, served_from = feeds.attach("run", 40)
    assert served_from == 40 and ahead.from_offset == 40


# --- a follower below what its gateway keeps: the same bytes as a fresh follower ----------------------------


async def raw_messages(http: httpx.AsyncClient, url: str, headers: dict[str, str], until: str) -> list[str]:
    """The SSE messages (comments left out) exactly as sent, up to and including the first of type `until`."""
    messages, block = [], []
    async with http.stream("GET", url, headers=headers) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line:
                block.append(line)
                continue
            if block and not block[0].startswith(":"):
                messages.append("\n".join(block))
                if f"event: {until}" in block:
                    return messages
            block = []
    return messages


async def test_a_follower_below_the_kept_events_gets_the_same_bytes_as_the_first(client, worker, fake_llm):
    asking = Reply(text="Thinking it over, word by word, then asking.", tool_calls=note(1).tool_calls, chunk_delay=0.05)
    fake_llm.push(asking, Reply(text="Saved it.", chunk_delay=0.05))
    handle = await client.start_workflow(
        "AgentLoopWorkflow",
        {"prompt": "save 1"},
        id=workflow_id("catch-up"),
        task_queue=worker.task_queue,
    )
    await pending_approvals(handle)

    async with serving_events(client, "/events/{workflow_id}", keep_events=3) as base:
        url = f"{base}/events/{handle.id}"
        async with httpx.AsyncClient(timeout=60, trust_env=False) as http:
            first = asyncio.create_task(raw_messages(http, url, {}, "run_finished"))
            await asyncio.sleep(1.0)  # the feed has read up to the request and keeps only its last 3 events
            early = await asyncio.wait_for(raw_messages(http, url, {}, "approval_requested"), 20)
            resumed = asyncio.create_task(raw_messages(http, url, {"Last-Event-ID": "1"}, "run_finished"))
            await asyncio.sleep(1.0)
            await handle.signal("approve", {"approver": "alice"})
            everything = await asyncio.wait_for(first, 30)
            later = await asyncio.wait_for(resumed, 30)
        assert len(everything) > 8 and early == everything[: len(early)]
        assert later == everything[2:]
