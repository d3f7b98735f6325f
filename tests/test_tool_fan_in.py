"""Bounded tool fan-in: one reply's tool calls run up to a limit, the rest go back to the model as errors."""

from __future__ import annotations

import asyncio
import json

import pytest

from devstack.fake_anthropic import Reply
from models.tooling import DEFAULT_MAX_TOOL_CALLS_PER_TURN
from tests.conftest import workflow_id
from tests.helpers import event_types
from tests.test_blackbox import fake_openai  # noqa: F401 (fixture)
from workflows.ledger import MAX_NOT_DONE_ENTRIES, capped

THOUSAND = [("calculator", {"expression": f"{i} + 1"}) for i in range(1000)]


def test_capped_lists_the_first_entries_and_how_many_more():
    assert capped(["a", "b"], 3) == ["a", "b"]
    assert capped([str(i) for i in range(25)], 20) == [*map(str, range(20)), "... and 5 more"]


async def test_a_reply_with_a_thousand_tool_calls_runs_thirty_two(client, worker, fake_llm):
    assert DEFAULT_MAX_TOOL_CALLS_PER_TURN == 32
    fake_llm.push(Reply(tool_calls=THOUSAND), Reply(text="Done with the first 32."))
    handle = await client.start_workflow(
        "AgentLoopWorkflow",
        {"prompt": "add one to each of 0..999", "budget": {"max_steps": 100, "max_tokens": 10**8}},
        id=workflow_id("fan-in"),
        task_queue=worker.task_queue,
    )
    result = await asyncio.wait_for(handle.result(), 120)

    assert result["status"] == "completed" and result["output"] == "Done with the first 32."
    assert result["usage"]["tool_calls"] == 32 and result["usage"]["llm_calls"] == 2
    results = fake_llm.requests[1].tool_results()  # every tool_use is answered, in order
    assert len(results) == 1000
    ran, refused = results[:32], results[32:]
    assert [r["content"] for r in ran] == [str(i + 1) for i in range(32)]
    assert not any(r["is_error"] for r in ran)
    assert all(r["is_error"] for r in refused)
    assert refused[0]["content"] == (
        "Not run: the reply asked for 1000 tool calls and at most 32 run per reply; "
        "the first 32 ran. Ask again for the ones you still need."
    )
    events = await event_types(handle)
    assert events.count("ACTIVITY_TASK_SCHEDULED") == 2  # two model calls; the 32 calculator calls ran locally
    assert events.count("MARKER_RECORDED") >= 32  # one local-activity marker per tool call
    assert len(events) < 400, f"{len(events)} events for one reply"
    fake_llm.assert_script_consumed()


async def test_a_budget_exceeded_result_stays_small(client, worker, fake_llm):
    fake_llm.push(Reply(tool_calls=THOUSAND))
    handle = await client.start_workflow(
        "AgentLoopWorkflow",
        {"prompt": "add one to each of 0..999", "budget": {"max_steps": 6, "max_tokens": 10**8}},
        id=workflow_id("fan-in-budget"),
        task_queue=worker.task_queue,
    )
    result = await asyncio.wait_for(handle.result(), 60)

    assert result["status"] == "budget_exceeded"
    output = result["output"]
    assert output["reason"] == "step ceiling reached: 6 of max_steps 6"
    assert len(output["not_done"]) == MAX_NOT_DONE_ENTRIES + 1
    # 27 of the 32 runnable calls were not run, plus the final answer; the 968 refused were never runnable.
    assert output["not_done"][-1] == f"... and {27 + 1 - MAX_NOT_DONE_ENTRIES} more"
    assert "28 pending" in output["summary"]
    assert len(json.dumps(result)) < 8_000, len(json.dumps(result))
    fake_llm.assert_script_consumed()


@pytest.mark.parametrize("model", ["anthropic:claude-sonnet-5-5", "openai:gpt-5"])
async def test_a_black_box_reply_runs_at_most_thirty_two_calls_too(
    client,
    fake_llm,
    fake_openai,  # noqa: F811 (before `worker`: the worker's client is aimed at it)
    worker,
    model,
):
    fake = fake_openai if model.startswith("openai") else fake_llm
    fake.push(Reply(tool_calls=THOUSAND[:40]), Reply(text="Done with the first 32."))
    result = await client.execute_workflow(
        "BlackBoxAgentWorkflow",
        {"agent": "assistant", "prompt": "add one to each of 0..39", "model": model},
        id=workflow_id("fan-in-bb"),
        task_queue=worker.task_queue,
    )
    assert result["status"] == "completed" and result["output"] == "Done with the first 32.", result
    assert result["usage"]["tool_calls"] == 32 and result["usage"]["llm_calls"] == 2
    answered = fake.requests[1]
    results = answered.tool_outputs() if model.startswith("openai") else answered.tool_results()
    shown = [r.get("output", r.get("content")) for r in results]
    assert len(shown) == 40 and shown[:32] == [str(i + 1) for i in range(32)]
    assert set(shown[32:]) == {
        "Not run: the reply asked for 40 tool calls and at most 32 run per reply; "
        "the first 32 ran. Ask again for the ones you still need."
    }
    fake.assert_script_consumed()
