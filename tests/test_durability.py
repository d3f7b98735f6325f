"""Faults lose nothing and repeat nothing: a SIGKILLed worker, a SIGKILLed server."""

from __future__ import annotations

import asyncio
import json

from config.settings import Settings
from devstack.dev_server import free_port, start_dev_server
from devstack.fake_anthropic import Reply
from service.connect import connect
from tests.conftest import workflow_id
from tests.helpers import eventually, pending_approvals
from tests.replay_check import assert_replays
from tools.notes import NoteStore


def turns(requests, n_messages):
    """Requests whose conversation had exactly `n_messages` messages (i.e. the same loop step)."""
    return [r for r in requests if len(r.messages) == n_messages]


async def test_worker_killed_mid_step_resumes_without_repaying_completed_steps(
    client, fake_llm, settings, worker_processes
):
    fake_llm.push(
        Reply(tool_calls=[("calculator", {"expression": "6000 * 0.2"})]),  # step 1 (LLM), then step 2 (tool)
        Reply(
            tool_calls=[("write_note", {"title": "Answer", "body": "1200"})], delay=60
        ),  # step 3: the worker dies here
        Reply(tool_calls=[("write_note", {"title": "Answer", "body": "1200"})]),  # step 3 retried on the new worker
        Reply(text="Saved: 6000 * 0.2 = 1200."),  # step 5, after step 4 (write_note)
    )
    first = worker_processes()
    handle = await client.start_workflow(
        "AgentLoopWorkflow",
        {"prompt": "What is 6000 * 0.2? Then save a note with the answer."},
        id=workflow_id("crash"),
        task_queue=settings.task_queue,
    )
    await eventually(lambda: len(fake_llm.requests) == 2, timeout=30)  # step 3 in flight
    first.kill()
    worker_processes()

    await pending_approvals(handle, timeout=60)
    await handle.signal("approve", {"approver": "alice"})
    result = await handle.result()

    assert result["status"] == "completed"
    assert result["output"] == "Saved: 6000 * 0.2 = 1200."
    assert result["steps"] == 5
    # Steps 1-2 were never sent again: the first request's conversation appears once, and no
    # request re-sent the calculator turn; only the in-flight step 3 was asked twice, identically.
    assert len(turns(fake_llm.requests, 1)) == 1
    step3 = turns(fake_llm.requests, 3)
    assert len(step3) == 2 and step3[0].body == step3[1].body
    assert len(fake_llm.requests) == 4
    # Usage counts what was paid for: three LLM replies, not the one lost with the worker.
    assert result["usage"]["llm_calls"] == 3
    notes = NoteStore(settings.notes_db).all()
    assert [(n.title, n.body) for n in notes] == [("Answer", "1200")]
    fake_llm.assert_script_consumed()
    # The approval was sent as soon as the status query showed it: the new worker had taken the run past its last
    # recorded workflow task, so the signal landed in the task that opens the request. The run must replay.
    await assert_replays(client, "tests/test_durability.py (worker killed mid-step)", [handle.id])


async def test_server_killed_mid_run_and_restarted_on_same_file(tmp_path, settings, fake_llm):
    from worker import build_worker

    served: list[int] = []

    def responder(body):
        served.append(len(body["messages"]))
        if len(body["messages"]) == 1:
            return Reply(tool_calls=[("calculator", {"expression": "19 * 21"})], delay=2)
        return Reply(text="19 * 21 = 399")

    fake_llm.responder = responder
    port, db_file = free_port(), str(tmp_path / "restart.db")
    server = start_dev_server(port=port, ui_port=None, db_file=db_file)
    try:
        await server.wait_serving()  # the port opens before the frontend is healthy
        client = await connect(Settings.from_env(), target_host=server.address)
        async with build_worker(client, settings):
            handle = await client.start_workflow(
                "AgentLoopWorkflow", {"prompt": "19 * 21?"}, id=workflow_id("restart"), task_queue=settings.task_queue
            )
            await eventually(lambda: served, timeout=20)
            server.kill()  # mid-call: the first call_llm has not completed
            server = start_dev_server(port=port, ui_port=None, db_file=db_file)
            await server.wait_serving()
            fresh = await connect(Settings.from_env(), target_host=server.address)
            result = await asyncio.wait_for(fresh.get_workflow_handle(handle.id).result(), timeout=90)
    finally:
        server.stop()

    assert result["status"] == "completed"
    assert result["output"] == "19 * 21 = 399"
    assert json.dumps(result["usage"])  # usage survived the restart
    assert result["steps"] == 3
