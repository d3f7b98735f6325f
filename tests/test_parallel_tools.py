"""One reply's read calls run side by side, writes alone in the model's order; results in the model's order."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.worker import Replayer

from config.settings import Settings
from devstack.fake_anthropic import Reply
from service.plugin import AgentServicePlugin
from tests.conftest import workflow_id
from tests.fixtures.probe_tools import RAN, Ran, probe_registry
from tests.helpers import patches_on
from worker import build_worker
from workflows.tool_plan import MAX_CONCURRENT_TOOL_CALLS, PARALLEL_TOOL_CALLS_PATCH, batches


@pytest.fixture
async def probe_worker(client, settings):
    """An in-process worker whose registry has the probe tools (tests/fixtures/probe_tools.py)."""
    RAN.clear()
    async with build_worker(client, settings, probe_registry()):
        yield settings


async def run(client, queue: str, fake_llm, calls, budget: dict | None = None):
    fake_llm.push(Reply(tool_calls=calls), Reply(text="done"))
    handle = await client.start_workflow(
        "AgentLoopWorkflow",
        {"prompt": "probe", "agent": "probe", **({"budget": budget} if budget else {})},
        id=workflow_id("parallel-tools"),
        task_queue=queue,
    )
    return handle, await asyncio.wait_for(handle.result(), 60)


def overlap(runs: list[Ran]) -> bool:
    """Whether every one of `runs` was running at one same moment."""
    return max(r.start for r in runs) < min(r.end for r in runs)


def test_consecutive_reads_batch_and_every_write_stands_alone():
    def is_read(name: str) -> bool:
        return name.startswith("r")

    assert batches(["r1", "r2", "w1", "r3", "w2", "w3", "r4"], is_read) == [  # type: ignore[arg-type]
        ["r1", "r2"],
        ["w1"],
        ["r3"],
        ["w2"],
        ["w3"],
        ["r4"],
    ]
    assert MAX_CONCURRENT_TOOL_CALLS == 8


@pytest.mark.parametrize("name", ["probe_read", "probe_read_long"])  # local activities, and regular ones
async def test_three_reads_of_one_reply_overlap_and_answer_in_order(client, probe_worker, fake_llm, name):
    _, result = await run(client, probe_worker.task_queue, fake_llm, [(name, {"label": label}) for label in "abc"])
    assert result["status"] == "completed", result
    assert overlap(RAN) and len(RAN) == 3
    assert [r["content"] for r in fake_llm.requests[1].tool_results()] == [f"{name}:{label}" for label in "abc"]
    assert result["usage"]["tool_calls"] == 3 and result["steps"] == 5
    keys = [r.key for r in sorted(RAN, key=lambda r: r.label)]
    assert [k.rsplit(":", 2)[1] for k in keys] == ["step-2", "step-3", "step-4"]  # step numbers in the model's order
    fake_llm.assert_script_consumed()


async def test_a_write_waits_for_the_reads_before_it_and_the_reads_after_wait_for_it(client, probe_worker, fake_llm):
    calls = [
        ("probe_read", {"label": "a"}),
        ("probe_read", {"label": "b"}),
        ("probe_write", {"label": "w"}),
        ("probe_read", {"label": "c"}),
    ]
    _, result = await run(client, probe_worker.task_queue, fake_llm, calls)
    assert result["status"] == "completed", result
    by_label = {r.label: r for r in RAN}
    assert overlap([by_label["a"], by_label["b"]])
    assert by_label["w"].start >= max(by_label["a"].end, by_label["b"].end)
    assert by_label["c"].start >= by_label["w"].end
    assert [r["content"] for r in fake_llm.requests[1].tool_results()] == [
        "probe_read:a",
        "probe_read:b",
        "probe_write:w",
        "probe_read:c",
    ]
    fake_llm.assert_script_consumed()


async def test_the_step_ceiling_holds_inside_a_batch(client, probe_worker, fake_llm):
    calls = [("probe_read", {"label": label}) for label in "abcd"]
    fake_llm.push(Reply(tool_calls=calls))
    handle = await client.start_workflow(
        "AgentLoopWorkflow",
        {"prompt": "probe", "agent": "probe", "budget": {"max_steps": 3}},
        id=workflow_id("parallel-budget"),
        task_queue=probe_worker.task_queue,
    )
    result = await asyncio.wait_for(handle.result(), 60)
    assert result["status"] == "budget_exceeded"
    assert sorted(r.label for r in RAN) == ["a", "b"]  # one LLM step, then room for two calls
    assert result["output"]["not_done"][:2] == [
        "probe_read(label='c') (requested, not run)",
        "probe_read(label='d') (requested, not run)",
    ]
    fake_llm.assert_script_consumed()


async def test_a_parallel_run_replays(client, probe_worker, fake_llm):
    calls = [("probe_read", {"label": "a"}), ("probe_read_long", {"label": "b"}), ("probe_write", {"label": "w"})]
    handle, result = await run(client, probe_worker.task_queue, fake_llm, calls)
    assert result["status"] == "completed", result
    history = await handle.fetch_history()
    assert PARALLEL_TOOL_CALLS_PATCH in patches_on(history)
    replayer = Replayer(workflows=[], plugins=[AgentServicePlugin(Settings.from_env(), probe_registry())])
    await replayer.replay_workflow(history)
