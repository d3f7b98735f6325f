"""Bounded history: a long loop keeps every generation's history small, and carries its totals and trace id."""

from __future__ import annotations

import asyncio
import json

from activities.summarise import SUMMARY_INSTRUCTIONS
from devstack.fake_anthropic import estimate_tokens
from devstack.histories import generations, history_bytes
from devstack.long_run import final_answer, log_reader, long_run_prompt, seed_log
from tests.conftest import workflow_id

BIG_BUDGET = {"max_steps": 10_000, "max_tokens": 10**9, "max_cost_usd": 100_000.0, "max_seconds": 3600}


def carried(history) -> dict:
    """The RunCarry a continued generation started with (its second input)."""
    payloads = history.events[0].workflow_execution_started_event_attributes.input.payloads
    return json.loads(payloads[1].data)


async def watch_steps(handle, seen: list[int]) -> None:
    """Record the `status` query's step while the run lasts (it answers across generations)."""
    while True:
        try:
            seen.append((await handle.query("status"))["step"])
        except Exception:  # between generations, or before the first workflow task
            pass
        await asyncio.sleep(0.5)


async def test_300_step_loop_continues_as_new_with_small_histories(client, worker, fake_llm):
    entries = 300
    seed_log(worker.notes_db, entries)
    fake_llm.responder = log_reader
    handle = await client.start_workflow(
        "AgentLoopWorkflow",
        {"prompt": long_run_prompt(entries), "budget": BIG_BUDGET},
        id=workflow_id("long"),
        task_queue=worker.task_queue,
    )
    seen: list[int] = []
    watcher = asyncio.create_task(watch_steps(handle, seen))
    try:
        result = await asyncio.wait_for(handle.result(), timeout=300)
    finally:
        watcher.cancel()

    requests = fake_llm.requests
    summaries = [r for r in requests if r.body.get("system") == SUMMARY_INSTRUCTIONS]
    assert result["status"] == "completed"
    assert result["output"] == final_answer(entries)
    # Totals span every generation: each reply and each tool call counted once, tokens as the model billed them.
    assert result["usage"]["tool_calls"] == entries
    assert result["usage"]["llm_calls"] == len(requests) == entries + 1 + len(summaries)
    assert result["steps"] == 2 * entries + 1 + len(summaries)
    assert result["usage"]["input_tokens"] == sum(estimate_tokens(r.body["messages"]) for r in requests)
    assert seen == sorted(seen) and seen[-1] > 0  # the status query never went back to step 0

    histories = await generations(client, handle.id, handle.first_execution_run_id or handle.run_id)
    sizes = [history_bytes(h) for h in histories]
    print(f"\n{len(histories)} generations, history bytes {sizes}, {len(summaries)} summaries")
    assert len(histories) >= 2, "the run never continued as new"
    assert max(sizes) < 2_000_000
    assert {carried(h)["trace_id"] for h in histories[1:]} == {result["trace_id"]}
    assert [carried(h)["generation"] for h in histories[1:]] == list(range(2, len(histories) + 1))

    # Context management: every 20 KB output reached the model truncated, and summaries kept requests bounded.
    outputs = [
        b["content"] for r in requests[1:] if r.body.get("system") != SUMMARY_INSTRUCTIONS for b in r.tool_results()
    ]
    assert outputs and all(len(o) <= 8200 and "[output truncated: first 8000 of" in o for o in outputs)
    assert summaries, "the context never passed CONTEXT_SUMMARY_TOKENS"
    assert max(estimate_tokens(r.body["messages"]) for r in requests) < 100_000 + 5_000


async def test_worker_killed_mid_long_run_gives_the_clean_runs_result(
    client, fake_llm, settings, worker_processes, monkeypatch
):
    from config.settings import Settings
    from devstack.fake_anthropic import Reply
    from tests.helpers import eventually
    from worker import build_worker

    entries, limits = (
        40,
        {"HISTORY_MAX_EVENTS": "200", "CONTEXT_SUMMARY_TOKENS": "30000"},
    )  # a few generations and summaries
    seed_log(settings.notes_db, entries)
    for name, value in limits.items():
        monkeypatch.setenv(name, value)
    payload = {"prompt": long_run_prompt(entries), "budget": BIG_BUDGET}
    fake_llm.responder = log_reader
    async with build_worker(client, Settings.from_env()):
        clean = await client.execute_workflow(
            "AgentLoopWorkflow", payload, id=workflow_id("clean"), task_queue=settings.task_queue
        )
    per_run = len(fake_llm.requests)
    assert any(r.body.get("system") == SUMMARY_INSTRUCTIONS for r in fake_llm.requests)

    stall_at = per_run + 30  # in the run's second or third generation; this call is in flight when the worker dies
    stalled: list[int] = []

    def responder(body):
        reply: Reply = log_reader(body)
        if len(fake_llm.requests) == stall_at and not stalled:
            stalled.append(stall_at)
            reply.delay = 30
        return reply

    fake_llm.responder = responder
    first = worker_processes(**limits)
    handle = await client.start_workflow(
        "AgentLoopWorkflow", payload, id=workflow_id("killed"), task_queue=settings.task_queue
    )
    await eventually(lambda: stalled, timeout=60)
    first.kill()
    worker_processes(**limits)
    crashed = await asyncio.wait_for(handle.result(), timeout=120)

    assert clean["status"] == crashed["status"] == "completed"
    assert crashed["output"] == clean["output"] == final_answer(entries)
    assert crashed["steps"] == clean["steps"]
    assert crashed["usage"] == clean["usage"]  # the call lost with the worker was re-sent, never counted twice
    assert len(fake_llm.requests) == 2 * per_run + 1
    histories = await generations(client, handle.id, handle.first_execution_run_id or handle.run_id)
    assert len(histories) >= 2  # local read tools: fewer events per step, so fewer generations than before
    assert {carried(h)["trace_id"] for h in histories[1:]} == {crashed["trace_id"]}


async def test_hybrid_continues_stage_4_as_new_with_its_plan(client, settings, fake_llm, tmp_path):
    import dataclasses

    from devstack.scripted_model import respond
    from models.history import HistoryLimits
    from tests.helpers import pending_approvals
    from worker import build_worker

    fake_llm.responder = respond
    outbox = tmp_path / "outbox.jsonl"
    # Below the environment's minimum on purpose: the whole demo run is about 80 events.
    tiny = dataclasses.replace(settings, notify_outbox=str(outbox), history=HistoryLimits(max_events=40))
    async with build_worker(client, tiny):
        handle = await client.start_workflow(
            "HybridAgentWorkflow",
            {"prompt": "My income is 6000 a month; plan a budget and decide whether to invest 500 a month."},
            id=workflow_id("hybrid-can"),
            task_queue=settings.task_queue,
        )
        for expected in ("req-1", "req-2"):  # the plan, then write_note in stage 4 (in the next generation)
            [pending] = await pending_approvals(handle, timeout=60)
            assert pending["request_id"] == expected
            await handle.signal("approve", {"approver": "alice", "request_id": expected})
            await eventually_gone(handle, expected)
        result = await handle.result()

    histories = await generations(client, handle.id, handle.first_execution_run_id or handle.run_id)
    assert len(histories) >= 2
    assert carried(histories[1])["stage_output"]["plan"]["consultations"][0]["agent"] == "budget"
    assert result["status"] == "completed"
    assert "6000 * 0.2 - 500 = 700" in result["output"]["answer"]
    assert result["output"]["specialist_outputs"]["budget"]["savings"] == 1200
    assert result["usage"]["llm_calls"] == 1 + 4 + 3 and result["steps"] == 1 + 2 + 5
    assert len(outbox.read_text().splitlines()) == 1


async def eventually_gone(handle, request_id: str) -> None:
    from tests.helpers import eventually

    async def gone() -> bool:
        status = await handle.query("status")
        return all(p["request_id"] != request_id for p in status["pending_approvals"])

    await eventually(gone, timeout=30)
