"""`HybridAgentWorkflow` end to end: five stages, revision after rejection, crash in stage 4, one notification."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from devstack.fake_anthropic import Reply
from devstack.scripted_model import EXECUTION_MARK, PLANNER_MARK, respond
from tests.conftest import workflow_id
from tests.helpers import eventually, pending_approvals

PROMPT = "My income is 6000 a month; plan a budget and decide whether to invest 500 a month."


def role(body: dict) -> str:
    """Which part of the hybrid run a recorded request came from."""
    tools = {t["name"] for t in body.get("tools") or []}
    first = body["messages"][0]["content"]
    text = first if isinstance(first, str) else " ".join(b.get("text", "") for b in first if b.get("type") == "text")
    if PLANNER_MARK in (body.get("system") or ""):
        return "planner"
    if "calculate_budget" in tools:
        return "budget"
    if "project_savings" in tools:
        return "analysis"
    return "executor" if text.startswith(EXECUTION_MARK) else "other"


def roles(fake) -> list[str]:
    return [role(r.body) for r in fake.requests]


@pytest.fixture
def outbox(tmp_path) -> Path:
    return tmp_path / "outbox.jsonl"


@pytest.fixture
async def hybrid_worker(client, settings, fake_llm, outbox):
    """An in-process worker writing notifications to this test's outbox, the scripted model behind the fake."""
    from worker import build_worker

    fake_llm.responder = respond
    hybrid_settings = dataclasses.replace(settings, notify_outbox=str(outbox))
    async with build_worker(client, hybrid_settings):
        yield hybrid_settings


async def start(client, queue, **extra):
    return await client.start_workflow(
        "HybridAgentWorkflow", {"prompt": PROMPT, **extra}, id=workflow_id("hybrid"), task_queue=queue
    )


async def approve_next(handle, kind_hint: str) -> dict:
    """Wait for the first request, check what it is about, approve it."""
    pending = (await pending_approvals(handle, 1))[0]
    assert kind_hint in pending["summary"], pending
    await handle.signal("approve", {"approver": "alice", "request_id": pending["request_id"]})
    return pending


async def stage_trail(handle) -> list[str]:
    """Activity summaries (and approval timers) in the order they were scheduled."""
    history = await handle.fetch_history()
    trail = []
    for e in history.events:
        if e.HasField("activity_task_scheduled_event_attributes") or e.HasField("timer_started_event_attributes"):
            trail.append(json.loads(e.user_metadata.summary.data) if e.user_metadata.HasField("summary") else "?")
    return trail


def stage_of(summary: str) -> int:
    return int(summary.split(":")[0].removeprefix("stage "))


async def test_five_stages_in_order_and_one_notification(client, hybrid_worker, fake_llm, outbox):
    handle = await start(client, hybrid_worker.task_queue)

    plan_request = await approve_next(handle, "approve plan")
    assert set(plan_request["proposal"]["specialist_outputs"]) == {"budget", "analysis"}
    status = await handle.query("status")
    assert status["pattern"] == "hybrid"
    note_request = await eventually(lambda: _pending_other_than(handle, plan_request["request_id"]))
    assert "write_note" in note_request["summary"]
    status = await handle.query("status")
    assert status["stage"] == "stage 4: execute" and status["waiting_for"].startswith("approval of req-2")
    await handle.signal("approve", {"approver": "alice", "request_id": note_request["request_id"]})
    result = await handle.result()

    assert result["status"] == "completed", result
    output = result["output"]
    assert output["plan"]["consultations"][0]["agent"] == "budget"
    assert output["specialist_outputs"]["budget"]["savings"] == 1200
    assert "6000 * 0.2 - 500 = 700" in output["answer"]
    assert output["notification"]["channel"] == "outbox" and not output["notification"]["duplicate"]
    seen = roles(fake_llm)
    assert seen[0] == "planner" and seen[5:] == ["executor"] * 3, seen
    assert sorted(seen[1:5]) == ["analysis", "analysis", "budget", "budget"]
    usage = result["usage"]
    assert usage["llm_calls"] == 1 + 4 + 3 and usage["tool_calls"] == 2 + 2

    # Approval notices (notify_approval, started beside each wait) are not stages.
    trail = [step for step in await stage_trail(handle) if not step.startswith("notify approvers")]
    assert trail[0] == "stage 1: plan (call_llm)"
    assert sorted(trail[1:3]) == [
        "stage 2: specialist analysis (invoke_agent)",
        "stage 2: specialist budget (invoke_agent)",
    ]
    assert trail[3] == "approval req-1 expires"
    assert trail[4].startswith("stage 4: step") and "call_llm (assistant)" in trail[4]
    assert trail[-1] == "stage 5: notify (send_notification)"
    stages = [stage_of(s) for s in trail if not s.startswith("approval")]
    assert stages == sorted(stages) and set(stages) == {1, 2, 4, 5}, trail
    assert "approval req-2 expires" in trail[4:-1]  # write_note, gated inside stage 4

    [line] = outbox.read_text().splitlines()
    assert json.loads(line)["idempotency_key"] == handle.id
    final = await handle.query("status")
    assert final["state"] == "completed"


async def test_rejection_feeds_the_reason_back_into_planning(client, hybrid_worker, fake_llm, outbox):
    handle = await start(client, hybrid_worker.task_queue, max_revisions=1)
    first = (await pending_approvals(handle, 1))[0]
    assert "500" in first["proposal"]["plan"]["summary"]
    await handle.signal("reject", {"approver": "bob", "reason": "too much, invest 300 a month"})

    second = await eventually(lambda: _pending_other_than(handle, first["request_id"]))
    assert "300" in second["proposal"]["plan"]["summary"]
    planner_requests = [r for r in fake_llm.requests if role(r.body) == "planner"]
    assert len(planner_requests) == 2
    feedback = json.dumps(planner_requests[1].messages)
    assert "too much, invest 300 a month" in feedback and "bob" in feedback
    status = await handle.query("status")
    assert status["stage"] == "stage 3: approval" and "approval" in status["waiting_for"]

    await handle.signal("reject", {"approver": "bob", "reason": "still no"})
    result = await handle.result()
    assert result["status"] == "rejected"
    assert result["output"]["stopped"] == "plan rejected by bob: still no"
    assert result["output"]["revisions"] == ["too much, invest 300 a month", "still no"]
    assert len(outbox.read_text().splitlines()) == 1


async def _pending_other_than(handle, request_id):
    pending = (await handle.query("status"))["pending_approvals"]
    return next((p for p in pending if p["request_id"] != request_id), None)


async def test_invalid_input_names_the_field(client, hybrid_worker):
    from temporalio.client import WorkflowFailureError

    handle = await start(client, hybrid_worker.task_queue, max_revisions=-1, colour="blue")
    with pytest.raises(WorkflowFailureError) as info:
        await handle.result()
    message = str(info.value.cause)
    assert "max_revisions" in message and "colour: unknown field" in message


async def test_crash_in_stage_4_does_not_repeat_stages_1_to_3(client, fake_llm, worker_processes, tmp_path, outbox):
    executor_calls = []

    def responder(body):
        reply = respond(body)
        if role(body) == "executor":
            executor_calls.append(1)
            if len(executor_calls) == 1:
                reply = Reply(text=reply.text, tool_calls=reply.tool_calls, delay=4.0)
        return reply

    fake_llm.responder = responder
    first = worker_processes(NOTIFY_OUTBOX=str(outbox))
    handle = await client.start_workflow(
        "HybridAgentWorkflow",
        {"prompt": PROMPT},
        id=workflow_id("hybrid-crash"),
        task_queue=first.env["TEMPORAL_TASK_QUEUE"],
    )
    plan_request = await approve_next(handle, "approve plan")
    await eventually(lambda: executor_calls, timeout=20)
    status = await handle.query("status")
    assert status["stage"] == "stage 4: execute", status
    first.kill()
    before = roles(fake_llm)
    assert before.count("planner") == 1 and before.count("budget") == 2 and before.count("analysis") == 2

    worker_processes(NOTIFY_OUTBOX=str(outbox))
    second = await eventually(lambda: _pending_other_than(handle, plan_request["request_id"]), timeout=60)
    assert "write_note" in second["summary"], second
    await handle.signal("approve", {"approver": "alice", "request_id": second["request_id"]})
    result = await handle.result()

    assert result["status"] == "completed", result
    after = roles(fake_llm)
    assert after.count("planner") == 1 and after.count("budget") == 2 and after.count("analysis") == 2
    assert after.count("executor") == 4  # the killed call is the only one paid twice
    assert len(outbox.read_text().splitlines()) == 1
