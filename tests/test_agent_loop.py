"""AgentLoopWorkflow end to end: real dev server, real `anthropic` client, scripted fake server."""

from __future__ import annotations

import subprocess

import pytest
from temporalio.client import WorkflowFailureError

from devstack.fake_anthropic import Fault, Reply
from tests.conftest import workflow_id
from tests.helpers import ROOT, pending_approvals
from tools.notes import NoteStore


async def run(client, settings, payload, prefix="loop"):
    handle = await client.start_workflow(
        "AgentLoopWorkflow", payload, id=workflow_id(prefix), task_queue=settings.task_queue
    )
    return handle, await handle.result()


async def test_tool_use_then_final_answer(client, worker, fake_llm):
    fake_llm.push(Reply(tool_calls=[("calculator", {"expression": "6000 * 0.2"})]), Reply(text="6000 * 0.2 = 1200."))
    _, result = await run(client, worker, {"prompt": "What is 6000 * 0.2?"})

    assert result["status"] == "completed"
    assert result["output"] == "6000 * 0.2 = 1200."
    assert result["usage"]["llm_calls"] == 2 and result["usage"]["tool_calls"] == 1
    assert result["steps"] == 3
    assert result["usage"]["input_tokens"] > 0 and result["usage"]["cost_usd"] > 0
    assert len(result["trace_id"]) == 32 and int(result["trace_id"], 16)
    # The tool's result reached the model's next request, answering the tool_use it asked for.
    first, second = fake_llm.requests
    assert [t["name"] for t in first.body["tools"]] == ["calculator", "search_notes", "write_note"]
    tool_use = second.messages[-2]["content"][0]
    assert second.tool_results() == [
        {"type": "tool_result", "tool_use_id": tool_use["id"], "content": "1200", "is_error": False}
    ]
    fake_llm.assert_script_consumed()


async def test_hallucinated_tool_gets_a_structured_error_listing_tools(client, worker, fake_llm):
    fake_llm.push(Reply(tool_calls=[("send_email", {"to": "x"})]), Reply(text="I cannot send email."))
    _, result = await run(client, worker, {"prompt": "email my boss"})

    assert result["status"] == "completed"
    [error] = fake_llm.requests[1].tool_results()
    assert error["is_error"] is True
    assert "Unknown tool 'send_email'" in error["content"]
    assert "calculator, search_notes, write_note" in error["content"]


async def test_invalid_arguments_are_returned_to_the_model(client, worker, fake_llm):
    fake_llm.push(
        Reply(tool_calls=[("calculator", {"expr": "1+1"})]),
        Reply(tool_calls=[("calculator", {"expression": "1/0"})]),
        Reply(text="done"),
    )
    _, result = await run(client, worker, {"prompt": "add"})

    assert result["status"] == "completed"
    [bad_args] = fake_llm.requests[1].tool_results()
    assert bad_args["is_error"] and "Invalid arguments for 'calculator'" in bad_args["content"]
    assert "expression: Field required" in bad_args["content"] and "expr: Extra inputs" in bad_args["content"]
    [div_zero] = fake_llm.requests[2].tool_results()
    assert div_zero["is_error"] and "division by zero" in div_zero["content"]


async def test_read_only_agent_never_runs_a_write_tool(client, worker, fake_llm):
    fake_llm.push(Reply(tool_calls=[("write_note", {"title": "t", "body": "b"})]), Reply(text="ok"))
    _, result = await run(client, worker, {"prompt": "save", "agent": "researcher"})

    assert result["status"] == "completed"
    [error] = fake_llm.requests[1].tool_results()
    assert error["is_error"] and "read-only" in error["content"]
    assert NoteStore(worker.notes_db).all() == []


async def test_step_ceiling_ends_gracefully_with_what_was_done(client, worker, fake_llm):
    fake_llm.push(*[Reply(tool_calls=[("calculator", {"expression": f"{i} + 1"})]) for i in range(2)])
    _, result = await run(client, worker, {"prompt": "count", "budget": {"max_steps": 3}})

    assert result["status"] == "budget_exceeded"
    assert result["steps"] == 3
    output = result["output"]
    assert "max_steps 3" in output["reason"]
    assert output["done"][0].startswith("step 1: LLM asked for calculator")
    assert "calculator(expression='0 + 1') -> ok: 1" in output["done"][1]
    assert output["not_done"] == [
        "calculator(expression='1 + 1') (requested, not run)",
        "the model had not given its final answer",
    ]
    fake_llm.assert_script_consumed()


async def test_token_budget_stops_before_overspending(client, worker, fake_llm):
    _, result = await run(client, worker, {"prompt": "x", "budget": {"max_tokens": 300}})

    assert result["status"] == "budget_exceeded"
    # The request's estimated input (system prompt, tools, prompt) alone is more than the budget: no call is made.
    assert result["output"]["reason"].startswith("token budget too small for the next model call"), result
    assert result["usage"]["llm_calls"] == 0 and fake_llm.requests == []


async def test_transient_429_and_529_are_retried_by_temporal(client, worker, fake_llm):
    fake_llm.push(
        Fault(429, "rate limited", retry_after=0.2),
        Fault(529, "overloaded"),
        Fault(500, "boom"),
        Reply(text="fine"),
    )
    handle, result = await run(client, worker, {"prompt": "hi"})

    assert result["status"] == "completed" and result["output"] == "fine"
    assert fake_llm.faults_served == 3
    history = await handle.fetch_history()
    attempts = [
        e.activity_task_started_event_attributes.attempt
        for e in history.events
        if e.HasField("activity_task_started_event_attributes")
    ]
    assert attempts == [4]  # one activity, its fourth attempt succeeded; every retry is Temporal's


async def test_400_fails_fast_with_the_providers_message(client, worker, fake_llm):
    fake_llm.push(Fault(400, "max_tokens: too large for model"))
    with pytest.raises(WorkflowFailureError) as failure:
        await run(client, worker, {"prompt": "hi"})

    message = str(failure.value.cause)
    assert "call_llm failed at step 1" in message
    assert "HTTP 400: max_tokens: too large for model" in message
    assert len(fake_llm.requests) == 1


async def test_tool_that_keeps_failing_becomes_an_error_result(client, worker, fake_llm, tmp_path, monkeypatch):
    # A directory where the SQLite file should be: every attempt fails, Temporal retries, then the model is told.
    (tmp_path / "notes.db").mkdir()
    fake_llm.push(Reply(tool_calls=[("search_notes", {"query": "budget"})]), Reply(text="notes are unavailable"))
    handle, result = await run(client, worker, {"prompt": "find my budget note"})

    assert result["status"] == "completed"
    [error] = fake_llm.requests[1].tool_results()
    assert error["is_error"] and "tool search_notes failed after 3 attempts" in error["content"]
    history = await handle.fetch_history()
    attempts = [
        e.activity_task_started_event_attributes.attempt
        for e in history.events
        if e.HasField("activity_task_started_event_attributes")
    ]
    assert attempts == [1, 1]  # the two call_llm; search_notes is a local activity, retried inside the worker


async def test_write_note_waits_for_approval_and_stores_once(client, worker, fake_llm):
    fake_llm.push(Reply(tool_calls=[("write_note", {"title": "Answer", "body": "1200"})]), Reply(text="saved"))
    handle = await client.start_workflow(
        "AgentLoopWorkflow", {"prompt": "save 1200"}, id=workflow_id("approve"), task_queue=worker.task_queue
    )
    [pending] = await pending_approvals(handle)
    assert pending["proposal"] == {"tool": "write_note", "arguments": {"title": "Answer", "body": "1200"}}
    assert NoteStore(worker.notes_db).all() == []

    await handle.signal("approve", {"approver": "alice"})
    result = await handle.result()
    assert result["status"] == "completed"
    [note] = NoteStore(worker.notes_db).all()
    assert (note.title, note.body) == ("Answer", "1200")
    assert note.idempotency_key.startswith(handle.id + ":")


async def test_an_unversioned_worker_stamps_its_tasks_with_a_build_id_a_deploy_can_trace(client, worker, fake_llm):
    """`<package version>-<commit>`, as a versioned worker's: not the SDK's hash of every loaded module."""
    fake_llm.push(Reply(text="Hello."))
    handle, result = await run(client, worker, {"prompt": "Say hello."})
    assert result["status"] == "completed"
    completed = [
        e.workflow_task_completed_event_attributes
        for e in (await handle.fetch_history()).events
        if e.HasField("workflow_task_completed_event_attributes")
    ]
    assert {c.worker_version.build_id for c in completed} == {worker.deployment.build_id}
    # Traceable: it ends with this checkout's commit (the package version before it changes with releases).
    commit = subprocess.run(
        ["git", "rev-parse", "--short=12", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert worker.deployment.build_id.endswith(f"-{commit}") and not worker.deployment.versioned
