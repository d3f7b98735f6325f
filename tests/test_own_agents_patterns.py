"""Agents from the agents file in all three patterns, each with an output schema checked on its final answer.

An in-process worker loads tests/fixtures/agents (a module of tools and a stdio MCP server); the fake
model plays the file's `order_status` agent (it looks the order up over MCP, then answers JSON), the
hybrid's planner and its executor.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError

from devstack.fake_anthropic import Reply
from devstack.fake_openai import FakeOpenAI
from tests.conftest import workflow_id
from tests.helpers import file_agents_worker, pending_approvals
from tools.output_check import schema_problems

AGENTS = Path(__file__).parent / "fixtures" / "agents"
PLAN = {
    "summary": "Ask the order desk, then tell the customer.",
    "consultations": [{"agent": "order_status", "prompt": "What is the status of order A1?"}],
    "execution": "Tell the customer the status of A1.",
}


@pytest.fixture
def fake_openai(monkeypatch):
    """The OpenAI side of the fake model, playing the same agents (the worker's client is built at start)."""
    with FakeOpenAI(responder=order_desk()) as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.url)
        yield fake


@pytest.fixture
async def file_worker(client, settings, fake_openai, monkeypatch, tmp_path):
    """A worker that loaded the fixture agents file, its tool module and its MCP server."""
    monkeypatch.setenv("AGENTS_FILE", str(AGENTS / "agents.toml"))
    monkeypatch.setenv("TOOL_MODULES", "support_tools")
    monkeypatch.setenv("CRM_DB", str(tmp_path / "crm.db"))
    monkeypatch.setenv("CRM_PID_FILE", str(tmp_path / "crm.pid"))
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.syspath_prepend(str(AGENTS))
    async with file_agents_worker(client) as worker_settings:
        yield worker_settings


def _items(body: dict) -> list:
    return body.get("input") if "input" in body else body.get("messages")


def _tool_names(body: dict) -> set[str]:
    return {t.get("name") or t.get("function", {}).get("name") for t in body.get("tools") or []}


def _answered(body: dict) -> bool:
    for item in _items(body):
        if not isinstance(item, dict):
            continue
        if item.get("type") == "function_call_output":
            return True
        content = item.get("content")
        if isinstance(content, list) and any(isinstance(b, dict) and b.get("type") == "tool_result" for b in content):
            return True
    return False


def order_desk(answer: str = '{"status": "shipped"}'):
    """The fake model as the file's agents: `order_status` looks A1 up over MCP, then answers `answer`."""

    def respond(body: dict) -> Reply:
        system = json.dumps(body.get("system") or body.get("instructions") or "")
        if "You plan how to answer" in system:
            return Reply(text=json.dumps(PLAN))
        if _tool_names(body) == {"crm__lookup_order"}:
            return (
                Reply(text=answer) if _answered(body) else Reply(tool_calls=[("crm__lookup_order", {"order_id": "A1"})])
            )
        return Reply(text="Your order A1 has shipped.")

    return respond


@pytest.mark.parametrize("model", ["anthropic:claude-sonnet-5-5", "openai:gpt-5"])
async def test_a_file_agent_runs_whole_as_a_black_box_on_either_engine(
    client, file_worker, fake_llm, fake_openai, model
):
    fake_llm.responder = order_desk()
    result = await client.execute_workflow(
        "BlackBoxAgentWorkflow",
        {"agent": "order_status", "prompt": "Status of A1?", "model": model},
        id=workflow_id("own-blackbox"),
        task_queue=file_worker.task_queue,
    )
    served = fake_openai.requests if model.startswith("openai") else fake_llm.requests
    assert result["status"] == "completed"
    assert result["output"] == {"status": "shipped"}  # JSON validated against the file's inline schema
    assert len(served) == 2 and result["usage"]["tool_calls"] == 1


async def test_the_hybrid_planner_offers_file_specialists_and_consults_one(client, file_worker, fake_llm):
    fake_llm.responder = order_desk()
    handle = await client.start_workflow(
        "HybridAgentWorkflow",
        {"prompt": "Where is my order A1?"},
        id=workflow_id("own-hybrid"),
        task_queue=file_worker.task_queue,
    )
    [plan] = await pending_approvals(handle, timeout=60)
    assert plan["proposal"]["specialist_outputs"] == {"order_status": {"status": "shipped"}}
    await handle.signal("approve", {"approver": "alice", "request_id": plan["request_id"]})
    result = await handle.result()
    assert result["status"] == "completed" and result["output"]["answer"] == "Your order A1 has shipped."
    planner = next(r for r in fake_llm.requests if "You plan how to answer" in json.dumps(r.body["system"]))
    # Every agent with an output schema is offered, with its one-line description from the file.
    assert "- order_status: Tells an order's status" in json.dumps(planner.body["system"])
    assert "- support: Answers questions about orders and refunds them" in json.dumps(planner.body["system"])


async def test_a_loop_answer_that_does_not_match_the_schema_goes_back_once_then_fails(client, file_worker, fake_llm):
    fake_llm.push(Reply(text="It has shipped."), Reply(text='{"status": 5}'))
    with pytest.raises(WorkflowFailureError) as info:
        await client.execute_workflow(
            "AgentLoopWorkflow",
            {"agent": "order_status", "prompt": "Status of A1?"},
            id=workflow_id("own-invalid"),
            task_queue=file_worker.task_queue,
        )
    cause = info.value.cause
    assert getattr(cause, "type", None) == "OutputInvalid"
    # The words every loop uses (tools/final_answer.py), a black box's too.
    assert "agent 'order_status' answered twice" in str(cause) and "status: 5 is not of type 'string'" in str(cause)
    correction = fake_llm.requests[1].messages[-1]["content"]
    assert "does not match the required output schema" in json.dumps(correction)
    # Told the answer's shape up front, as a black box's agent is (tools/final_answer.py `instructions_for`).
    assert "Your final answer must be JSON only, matching this schema" in json.dumps(
        fake_llm.requests[0].body["system"]
    )


async def test_a_black_box_answer_that_does_not_match_the_schema_goes_back_once_then_fails(
    client, file_worker, fake_llm
):
    fake_llm.responder = order_desk(answer='{"state": "shipped"}')
    with pytest.raises(WorkflowFailureError) as info:
        await client.execute_workflow(
            "BlackBoxAgentWorkflow",
            {"agent": "order_status", "prompt": "Status of A1?"},
            id=workflow_id("own-invalid-bb"),
            task_queue=file_worker.task_queue,
        )
    assert "does not match its output_schema" in str(info.value.cause)
    assert "'status' is a required property" in str(info.value.cause)
    assert len(fake_llm.requests) == 3  # lookup, answer, corrected answer: no retry of the whole agent


async def test_a_schema_that_cannot_check_the_answer_fails_the_run_instead_of_wedging_it(
    client, settings, fake_llm, monkeypatch, tmp_path
):
    # The property refers to itself: the file loads (the loop is reached only through an answer's member),
    # and validating the answer used to raise RecursionError in workflow code, failing every workflow task.
    schema = '{ properties = { status = { "$ref" = "#/properties/status" } } }'
    assert schema_problems({"properties": {"status": {"$ref": "#/properties/status"}}}) == []
    path = tmp_path / "agents.toml"
    path.write_text(f'[agents.looping]\ninstructions = "Say the status."\noutput_schema = {schema}\n')
    monkeypatch.setenv("AGENTS_FILE", str(path))
    fake_llm.push(Reply(text='{"status": "shipped"}'))
    async with file_agents_worker(client) as worker_settings:
        with pytest.raises(WorkflowFailureError) as info:
            await client.execute_workflow(
                "AgentLoopWorkflow",
                {"agent": "looping", "prompt": "Status of A1?"},
                id=workflow_id("own-unusable-schema"),
                task_queue=worker_settings.task_queue,
                execution_timeout=timedelta(seconds=30),  # a wedged run ends here instead
            )
    cause = info.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "OutputSchemaUnusable", cause
    assert "the output_schema of agent 'looping' cannot check an answer (its $refs loop" in str(cause)
    assert len(fake_llm.requests) == 1  # not sent back to the model: no answer could pass
