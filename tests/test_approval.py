"""Human approval end to end on the real dev server: the CLI's signals, the `decide` update, crash-safe waiting, UI details."""

from __future__ import annotations

import asyncio
import json

import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import WorkflowExecutionStatus, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from devstack.dev_server import temporal_cli
from devstack.fake_anthropic import Reply
from tests.conftest import workflow_id
from tests.helpers import eventually, pending_approvals
from tools.notes import NoteStore

NOTE = {"title": "Answer", "body": "1200"}


async def cli(*args: str) -> str:
    """Run the `temporal` CLI; fail with its output unless it exits 0."""
    proc = await asyncio.create_subprocess_exec(
        temporal_cli(), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    text = out.decode()
    assert proc.returncode == 0, f"temporal {' '.join(args)} exited {proc.returncode}:\n{text}"
    return text


async def start(client, settings, payload=None, prefix="approval"):
    return await client.start_workflow(
        "AgentLoopWorkflow",
        payload or {"prompt": "save 1200 as a note"},
        id=workflow_id(prefix),
        task_queue=settings.task_queue,
    )


def notes(settings) -> list[tuple[str, str]]:
    return [(n.title, n.body) for n in NoteStore(settings.notes_db).all()]


# --- signals from the `temporal` CLI ---------------------------------------------------------------


async def test_cli_approve_signal_runs_the_write_and_completes(client, worker, fake_llm, dev_server):
    fake_llm.push(Reply(tool_calls=[("write_note", NOTE)]), Reply(text="Saved the note."))
    handle = await start(client, worker)
    [pending] = await pending_approvals(handle)
    assert pending["request_id"] == "req-1"
    assert pending["proposal"] == {"tool": "write_note", "arguments": NOTE}
    assert (await handle.query("status"))["state"] == "waiting_for_approval"
    assert notes(worker) == []

    out = await cli(
        "workflow",
        "signal",
        "--address",
        dev_server.address,
        "--workflow-id",
        handle.id,
        "--name",
        "approve",
        "--input",
        '{"approver": "alice"}',
    )
    assert "succeeded" in out.lower()

    result = await asyncio.wait_for(handle.result(), 20)
    assert result["status"] == "completed" and result["output"] == "Saved the note."
    assert notes(worker) == [("Answer", "1200")]
    [tool_result] = fake_llm.requests[1].tool_results()
    assert tool_result["is_error"] is False and tool_result["content"].startswith("Saved note #1 'Answer'")
    status = await handle.query("status")
    assert status["state"] == "completed" and status["pending_approvals"] == []
    fake_llm.assert_script_consumed()


async def test_cli_reject_signal_tells_the_model_and_writes_nothing(client, worker, fake_llm, dev_server):
    fake_llm.push(Reply(tool_calls=[("write_note", NOTE)]), Reply(text="Understood, I did not save it."))
    handle = await start(client, worker)
    await pending_approvals(handle)

    await cli(
        "workflow",
        "signal",
        "--address",
        dev_server.address,
        "--workflow-id",
        handle.id,
        "--name",
        "reject",
        "--input",
        '{"approver":"bob","reason":"too risky"}',
    )

    result = await asyncio.wait_for(handle.result(), 20)
    assert result["status"] == "completed" and result["output"] == "Understood, I did not save it."
    tool_use = fake_llm.requests[1].messages[-2]["content"][0]
    assert fake_llm.requests[1].tool_results() == [
        {
            "type": "tool_result",
            "tool_use_id": tool_use["id"],
            "content": "Not run: rejected by bob: too risky",
            "is_error": True,
        }
    ]
    assert notes(worker) == []
    fake_llm.assert_script_consumed()


# --- update `decide` --------------------------------------------------------------------------------


async def refused(handle, payload: dict) -> str:
    """Send `decide`, expect it refused, and return the message the caller sees."""
    with pytest.raises(WorkflowUpdateFailedError) as failure:
        await handle.execute_update("decide", payload)
    cause = failure.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "DecisionRefused", repr(cause)
    return cause.message


async def pending_ids_are(handle, request_ids: list[str]) -> bool:
    status = await handle.query("status")
    return [p["request_id"] for p in status["pending_approvals"]] == request_ids


async def test_decide_update_refuses_wrong_decisions_and_returns_the_recorded_one(client, worker, fake_llm):
    # Two writes in one turn: two requests, so the run is still waiting after the first is decided.
    second = {"title": "Second", "body": "draft"}
    fake_llm.push(Reply(tool_calls=[("write_note", NOTE), ("write_note", second)]), Reply(text="One saved, one not."))
    handle = await start(client, worker, {"prompt": "save two notes", "approval": {"approvers": ["alice"]}})
    [pending] = await pending_approvals(handle)
    assert pending["request_id"] == "req-1" and pending["approvers"] == ["alice"]
    before = await handle.query("status")

    assert await refused(handle, {"request_id": "req-9", "approved": True, "approver": "alice"}) == (
        "unknown request_id 'req-9' (pending: req-1)"
    )
    assert await refused(handle, {"request_id": "req-1", "approved": True, "approver": "mallory"}) == (
        "approver 'mallory' is not allowed to decide (allowed: alice)"
    )
    assert "approved: Input should be a valid boolean" in await refused(
        handle, {"request_id": "req-1", "approved": "yes", "approver": "alice"}
    )
    # Nothing changed: same status, nothing written, still waiting.
    assert await handle.query("status") == before
    assert notes(worker) == []

    decision = await handle.execute_update(
        "decide", {"request_id": "req-1", "approved": True, "approver": "alice", "comment": "go"}
    )
    assert {k: decision[k] for k in ("request_id", "approved", "approver", "comment", "via")} == {
        "request_id": "req-1",
        "approved": True,
        "approver": "alice",
        "comment": "go",
        "via": "update",
    }

    # The first write runs, then the second request waits.
    await eventually(lambda: pending_ids_are(handle, ["req-2"]))
    assert notes(worker) == [("Answer", "1200")]
    before = await handle.query("status")

    assert await refused(handle, {"request_id": "req-1", "approved": False, "approver": "alice"}) == (
        "request req-1 was already approved by alice"
    )
    assert await handle.query("status") == before
    assert notes(worker) == [("Answer", "1200")]

    decision = await handle.execute_update(
        "decide", {"request_id": "req-2", "approved": False, "approver": "alice", "comment": "not this"}
    )
    assert (decision["request_id"], decision["approved"], decision["via"]) == ("req-2", False, "update")

    result = await asyncio.wait_for(handle.result(), 20)
    assert result["status"] == "completed"
    results = fake_llm.requests[1].tool_results()
    assert [r["is_error"] for r in results] == [False, True]
    assert results[1]["content"] == "Not run: rejected by alice: not this"
    assert notes(worker) == [("Answer", "1200")]
    # Refused updates never reach history; the two accepted ones do.
    history = await handle.fetch_history()
    accepted = [e for e in history.events if e.HasField("workflow_execution_update_accepted_event_attributes")]
    assert len(accepted) == 2


# --- signals that change nothing ------------------------------------------------------------------


async def test_signal_from_unlisted_approver_is_recorded_and_ignored(client, worker, fake_llm):
    fake_llm.push(Reply(tool_calls=[("write_note", NOTE)]), Reply(text="Saved."))
    handle = await start(client, worker, {"prompt": "save", "approval": {"approvers": ["alice"]}})
    await pending_approvals(handle)

    await handle.signal("approve", {"approver": "mallory", "comment": "trust me"})
    await handle.signal("approve", "yes please")

    async def two_ignored():
        status = await handle.query("status")
        return status if len(status["ignored_decisions"]) == 2 else None

    status = await eventually(two_ignored)
    unlisted, bad = status["ignored_decisions"]
    assert (unlisted["signal"], unlisted["approver"]) == ("approve", "mallory")
    assert unlisted["reason"] == "approver 'mallory' is not allowed to decide (allowed: alice)"
    assert bad["reason"] == "payload must be a JSON object, got a string"
    # Still waiting on the same request; nothing written; the model was not called again.
    assert status["state"] == "waiting_for_approval"
    assert [p["request_id"] for p in status["pending_approvals"]] == ["req-1"]
    assert notes(worker) == []
    assert len(fake_llm.requests) == 1
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING

    await handle.signal("approve", {"approver": "alice"})
    result = await asyncio.wait_for(handle.result(), 20)
    assert result["status"] == "completed"
    assert notes(worker) == [("Answer", "1200")]


# --- durability --------------------------------------------------------------------------------------


async def test_approval_survives_a_killed_worker_and_writes_once(client, settings, fake_llm, worker_processes):
    fake_llm.push(Reply(tool_calls=[("write_note", NOTE)]), Reply(text="Saved after the crash."))
    first = worker_processes()
    handle = await start(client, settings, prefix="crash")
    await pending_approvals(handle)

    first.kill()
    assert first.proc.returncode == -9
    await handle.signal("approve", {"approver": "alice", "comment": "approved while no worker runs"})
    # The signal is stored by the server; nothing can run it yet.
    await asyncio.sleep(0.5)
    assert notes(settings) == [] and len(fake_llm.requests) == 1
    assert (await handle.describe()).status == WorkflowExecutionStatus.RUNNING

    worker_processes()
    result = await asyncio.wait_for(handle.result(), 45)  # includes ~10 s on the dead worker's sticky queue
    assert result["status"] == "completed" and result["output"] == "Saved after the crash."
    assert notes(settings) == [("Answer", "1200")]
    # The model was called once before and once after the crash: nothing re-paid.
    assert len(fake_llm.requests) == 2
    fake_llm.assert_script_consumed()


# --- what the UI shows --------------------------------------------------------------------------------


def _json_block(markdown: str) -> dict:
    return json.loads(markdown.split("```json\n", 1)[1].split("\n```", 1)[0])


async def test_pending_proposal_is_in_the_ui_current_details(client, worker, fake_llm, dev_server):
    fake_llm.push(Reply(tool_calls=[("write_note", NOTE)]), Reply(text="Saved."))
    handle = await start(client, worker, {"prompt": "save", "approval": {"approvers": ["alice", "bob"]}})
    await pending_approvals(handle)

    # What the UI's "User Metadata" tab reads: the SDK's built-in metadata query.
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    details = metadata.current_details
    assert details.startswith("## Waiting for approval: req-1")
    assert "write_note" in details
    assert _json_block(details) == {"tool": "write_note", "arguments": NOTE}
    assert "Approvers: alice, bob." in details
    # The UI also lists the approval handlers with their descriptions.
    signals = {s.name: s.description for s in metadata.definition.signal_definitions}
    assert "approver" in signals["approve"] and "reason" in signals["reject"]
    assert "decide" in {u.name for u in metadata.definition.update_definitions}

    # Same thing through the CLI a person would use.
    out = await cli("workflow", "metadata", "--address", dev_server.address, "--workflow-id", handle.id, "-o", "json")
    [cli_metadata] = json.loads(out)["queryResult"]
    cli_details = cli_metadata["currentDetails"]
    assert _json_block(cli_details) == {"tool": "write_note", "arguments": NOTE}

    await handle.signal("approve", {"approver": "bob"})
    assert (await asyncio.wait_for(handle.result(), 20))["status"] == "completed"
    metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
    assert metadata.current_details == "req-1 approved by bob: run write_note(title='Answer', body='1200')"
