"""A worker SIGKILLed while the model's reply is streaming, followed over the gateway's SSE route.

Two `python worker.py` processes poll the queue; the one running the streamed `call_llm` is killed after the
follower has received part of the reply. The follower must see the abandoned attempt's deltas marked as
attempt 1, then attempt 2's, every offset once, and the run's result must be what a clean run returns.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from devstack.dev_server import free_port
from devstack.fake_anthropic import Reply
from progress.reader import discard_abandoned, follow_events
from tests.conftest import workflow_id
from tests.gateway_support import auth, gateway_client, running_gateway, with_gateway, write_tokens
from tests.helpers import eventually
from tests.sse_support import SseEvent, check_well_formed, follow_sse, last_reply_text, start_following

ANSWER = " ".join(
    [
        "Twelve",
        "hundred",
        "is",
        "twenty",
        "percent",
        "of",
        "six",
        "thousand;",
        "the",
        "calculator",
        "agrees,",
        "and",
        "here",
        "is",
        "the",
        "long",
        "way",
        "round,",
        "spelled",
        "out",
        "one",
        "word",
        "at",
        "a",
        "time",
        "so",
        "that",
        "a",
        "reader",
        "watching",
        "the",
        "run",
        "sees",
        "it",
        "arrive",
        "piece",
        "by",
        "piece.",
    ]
)
PROMPT = {"prompt": "What is 6000 * 0.2? Explain at length."}


def script(fake, *, streamed_attempts: int, slow: float) -> None:
    """A tool step, then the answer streamed `slow` seconds a word; `streamed_attempts` answers for a killed
    attempt (the first) and its retry."""
    fake.push(Reply(text="Let me compute that.", tool_calls=[("calculator", {"expression": "6000 * 0.2"})]))
    fake.push(Reply(text=ANSWER, chunk_delay=slow))
    for _ in range(streamed_attempts - 1):
        fake.push(Reply(text=ANSWER, chunk_delay=0.02))


@pytest.fixture
async def gateway_url(client, settings, tmp_path):
    """The gateway in this process (no worker in it: the worker processes run the workflow)."""
    tokens = write_tokens(tmp_path / "tokens.toml")
    async with running_gateway(client, with_gateway(settings, free_port()), tokens) as url:
        yield url


def comparable(result: dict) -> dict:
    """A result without its trace id (each run has its own trace)."""
    return {k: v for k, v in result.items() if k != "trace_id"}


async def test_a_worker_killed_mid_stream_the_follower_sees_both_attempts_marked(
    client, settings, fake_llm, worker_processes, gateway_url
):
    workers = {name: worker_processes(WORKER_IDENTITY=name) for name in ("worker-a", "worker-b")}
    # A clean run first: what the result must be.
    script(fake_llm, streamed_attempts=1, slow=0.0)
    clean = await client.start_workflow(
        "AgentLoopWorkflow", PROMPT, id=workflow_id("clean"), task_queue=settings.task_queue
    )
    clean_result = await asyncio.wait_for(clean.result(), 60)
    assert clean_result["status"] == "completed" and clean_result["output"] == ANSWER
    fake_llm.assert_script_consumed()

    before = len(fake_llm.requests)
    script(fake_llm, streamed_attempts=2, slow=0.15)  # ~6 s of streaming for the first attempt
    handle = await client.start_workflow(
        "AgentLoopWorkflow", PROMPT, id=workflow_id("killed"), task_queue=settings.task_queue
    )
    streaming = asyncio.Event()

    def watch(event: SseEvent) -> None:
        if event.event == "llm_delta" and event.data["attempt"] == 1 and event.data["text"] != "Let me compute that.":
            streaming.set()

    async with gateway_client(gateway_url) as http:
        follower = start_following(http, f"/v1/runs/{handle.id}/events", auth("reader"), on_event=watch)
        await asyncio.wait_for(streaming.wait(), 30)  # the follower holds part of the answer

        async def holder() -> str | None:
            pending = (await handle.describe()).raw_description.pending_activities
            return pending[0].last_worker_identity if pending else None

        running = await eventually(holder, timeout=10)
        assert len(fake_llm.requests) == before + 2  # the answer is being streamed, not yet retried
        workers[running].kill()
        result = await asyncio.wait_for(handle.result(), 90)
        seen = await asyncio.wait_for(follower, 60)
        again = await asyncio.wait_for(follow_sse(http, f"/v1/runs/{handle.id}/events", auth("reader")), 60)

    assert comparable(result) == comparable(clean_result)
    assert seen.ended
    events = seen.events
    check_well_formed(events)  # offsets 0, 1, 2 ... each once, run_finished last
    datas = [{k: v for k, v in e.data.items() if k != "offset"} for e in events]
    assert len({json.dumps(d, sort_keys=True) for d in datas}) == len(datas)  # no event under two offsets

    started = [i for i, e in enumerate(events) if e.event == "llm_started"]
    finished = [i for i, e in enumerate(events) if e.event == "llm_finished"]
    assert len(started) == len(finished) == 2  # two steps; a retried attempt is not a new step
    step = [e for e in events[started[1] : finished[1]] if e.event == "llm_delta"]
    attempts = [e.data["attempt"] for e in step]
    assert 1 in attempts and 2 in attempts and attempts == sorted(attempts), attempts  # abandoned first, then retry
    (activity_id,) = {e.data["activity_id"] for e in step}  # one activity, two attempts
    abandoned = "".join(e.data["text"] for e in step if e.data["attempt"] == 1)
    assert abandoned and ANSWER.startswith(abandoned) and abandoned != ANSWER  # cut off by the kill
    assert last_reply_text(events) == ANSWER == result["output"]
    # The reader's rule for followers keeps the retried attempt's text only.
    kept = [d for d in discard_abandoned([e.data for e in events]) if d.get("activity_id") == activity_id]
    assert kept == [e.data for e in step if e.data["attempt"] == 2]
    # After the close, the same stream again, over SSE and through the reader.
    assert [(e.id, e.data) for e in again.events] == [(e.id, e.data) for e in events]
    assert [e async for e in follow_events(client, handle.id)] == [e.data for e in events]
    last_start = [
        e.activity_task_started_event_attributes
        for e in (await handle.fetch_history()).events
        if e.HasField("activity_task_started_event_attributes")
    ][-1]
    assert last_start.attempt == 2 and last_start.identity != running  # the streamed step, retried on the survivor
    fake_llm.assert_script_consumed()
