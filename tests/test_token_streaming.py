"""Token streaming from the model: deltas on the progress stream, the activity's result still the whole reply.

Real `anthropic` / `openai` / Agents SDK clients stream Server-Sent Events from the fakes over HTTP.
"""

from __future__ import annotations

import dataclasses
import json

import pytest

from devstack.fake_anthropic import Reply
from devstack.fake_openai import FakeOpenAI
from progress.reader import follow_events
from tests.conftest import workflow_id
from tests.test_blackbox import BUDGET_ARGS, budget_answer

LONG = "Twelve hundred is twenty percent of six thousand, so that is the answer you asked me for."


@pytest.fixture
def fake_openai(monkeypatch):
    """A scripted fake OpenAI server with the SDK aimed at it."""
    with FakeOpenAI() as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.url)
        yield fake


async def run_and_read(client, queue, workflow, payload, prefix):
    handle = await client.start_workflow(workflow, payload, id=workflow_id(prefix), task_queue=queue)
    result = await handle.result()
    return result, [e async for e in follow_events(client, handle.id)]


def deltas(events):
    return [e for e in events if e["type"] == "llm_delta"]


async def test_anthropic_deltas_concatenate_to_the_reply(client, worker, fake_llm):
    fake_llm.push(Reply(text=LONG, chunk_delay=0.05))
    result, events = await run_and_read(
        client, worker.task_queue, "AgentLoopWorkflow", {"prompt": "6000*0.2?"}, "sse-a"
    )
    assert result["output"] == LONG
    assert fake_llm.requests[0].body["stream"] is True
    assert len(deltas(events)) >= 2  # batched, but more than one batch over ~0.8 s of streaming
    assert "".join(d["text"] for d in deltas(events)) == LONG
    assert result["usage"]["output_tokens"] > 0


async def test_openai_responses_deltas_concatenate_to_the_reply(client, fake_openai, worker):
    fake_openai.push(Reply(text=LONG, chunk_delay=0.05))
    payload = {"prompt": "6000*0.2?", "model": "openai:gpt-5"}
    result, events = await run_and_read(client, worker.task_queue, "AgentLoopWorkflow", payload, "sse-o")
    assert result["status"] == "completed", result
    assert result["output"] == LONG
    assert fake_openai.requests[0].body["stream"] is True
    assert len(deltas(events)) >= 2
    assert "".join(d["text"] for d in deltas(events)) == LONG
    assert result["usage"]["output_tokens"] > 0


async def test_agents_sdk_black_box_streams_turns_and_text(client, fake_openai, worker):
    fake_openai.push(Reply(tool_calls=[("calculate_budget", BUDGET_ARGS)]), Reply(text=budget_answer()))
    payload = {"agent": "budget", "prompt": "I earn 5000 a month.", "model": "openai:gpt-5"}
    result, events = await run_and_read(client, worker.task_queue, "BlackBoxAgentWorkflow", payload, "sse-bb")
    assert result["status"] == "completed", result
    output = result["output"]
    assert (json.loads(output) if isinstance(output, str) else output) == json.loads(budget_answer())
    assert all(r.body.get("stream") is True for r in fake_openai.requests)
    turns = [e for e in events if e["type"] == "agent_turn"]
    assert [t["turn"] for t in turns] == [1, 2] and turns[0]["agent"] == "budget"
    assert "".join(d["text"] for d in deltas(events)) == budget_answer()
    assert all(d["agent"] == "budget" for d in deltas(events))
    assert events[-1]["type"] == "run_finished"


async def test_claude_black_box_streams_text(client, worker, fake_llm):
    fake_llm.push(Reply(text="A plain answer from the analysis agent."))
    payload = {"agent": "assistant", "prompt": "hi", "model": "anthropic:claude-sonnet-5-5"}
    result, events = await run_and_read(client, worker.task_queue, "BlackBoxAgentWorkflow", payload, "sse-bc")
    assert result["status"] == "completed", result
    assert "".join(d["text"] for d in deltas(events)) == "A plain answer from the analysis agent."
    assert [e["type"] for e in events if e["type"] == "agent_turn"] == ["agent_turn"]


async def test_streaming_off_still_works(client, settings, fake_llm):
    from worker import build_worker

    off = dataclasses.replace(settings, llm_streaming=False)
    fake_llm.push(Reply(text=LONG))
    async with build_worker(client, off):
        result, events = await run_and_read(client, off.task_queue, "AgentLoopWorkflow", {"prompt": "hi"}, "sse-off")
    assert result["output"] == LONG
    assert "stream" not in fake_llm.requests[0].body
    assert deltas(events) == []
    assert [e["type"] for e in events] == ["llm_started", "llm_finished", "run_finished"]


def test_llm_streaming_setting():
    from config.settings import Settings

    assert Settings.from_env({}).llm_streaming is True
    assert Settings.from_env({"LLM_STREAMING": "0"}).llm_streaming is False
