"""Handoffs inside black boxes (pattern A), both engines: the next agent sees exactly what `handoff_context`
promises, an agent not offered is an error the model reads, a target that is not read-only is refused when the
run pins its agents, and a worker killed right after a handoff resumes as the agent handed to."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest
from temporalio.client import WorkflowFailureError

from devstack.fake_anthropic import Reply
from devstack.fake_openai import FakeOpenAI
from progress.reader import follow_events
from tests.conftest import workflow_id
from tests.helpers import eventually, file_agents_worker

PROMPT = "What is 2 * 21, and how do I pay it?"
HISTORIES = Path(__file__).parent / "histories"
ENGINES = ["anthropic:claude-sonnet-5-5", "openai:gpt-5"]


def agents_toml(context: str, billing_read_only: bool = True) -> str:
    return textwrap.dedent(
        f"""
        [agents.front]
        description = "Front desk"
        instructions = "FRONT DESK: calculate, then hand billing questions over."
        tools = ["calculator"]
        handoffs = ["billing"]
        handoff_context = "{context}"
        read_only = true

        [agents.billing]
        description = "Takes payment questions"
        instructions = "BILLING DESK: explain how to pay."
        tools = ["search_notes"]
        read_only = {str(billing_read_only).lower()}
        """
    )


@pytest.fixture
def fake_openai(monkeypatch):
    with FakeOpenAI() as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.url)
        yield fake


@pytest.fixture
def engine(request, settings, fake_llm, fake_openai):
    """(model, the fake that model talks to)."""
    model = request.param
    return model, fake_openai if model.startswith("openai") else fake_llm


def _write_agents(tmp_path, monkeypatch, text: str) -> str:
    path = tmp_path / "agents.toml"
    path.write_text(text)
    monkeypatch.setenv("AGENTS_FILE", str(path))
    return str(path)


def _system(request) -> str:
    """The instructions a request gave the model (Messages `system`, Responses `instructions`)."""
    return json.dumps(request.body.get("system") or request.body.get("instructions"))


def _tools(request) -> set[str]:
    return {t.get("name") for t in request.body.get("tools", [])}


def _seen(request) -> list:
    return request.items if hasattr(request, "items") else request.messages


async def _run_front(client, model: str, wid: str):
    async with file_agents_worker(client) as worker_settings:
        handle = await client.start_workflow(
            "BlackBoxAgentWorkflow",
            {"agent": "front", "prompt": PROMPT, "model": model},
            id=workflow_id(wid),
            task_queue=worker_settings.task_queue,
        )
        result = await handle.result()
        status = await handle.query("status")
        events = [e async for e in follow_events(client, handle.id)]
    return handle, result, status, events


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
@pytest.mark.parametrize("context", ["full", "summary", "none"])
async def test_the_next_agent_sees_what_handoff_context_promises(client, tmp_path, monkeypatch, engine, context):
    model, fake = engine
    _write_agents(tmp_path, monkeypatch, agents_toml(context))
    fake.push(
        Reply(tool_calls=[("calculator", {"expression": "2 * 21"})]),
        Reply(tool_calls=[("transfer_to_billing", {"reason": "a payment question"})]),
        Reply(text="Billing here: pay 42 by card."),
    )
    handle, result, status, events = await _run_front(client, model, f"bb-handoff-{context}")

    assert result["status"] == "completed" and result["output"] == "Billing here: pay 42 by card.", result
    first, _, after = fake.requests
    assert "FRONT DESK" in _system(first) and _tools(first) == {"calculator", "transfer_to_billing"}
    # From the handoff on: the billing agent's instructions and tools (it may not hand on).
    assert "BILLING DESK" in _system(after) and "FRONT DESK" not in _system(after)
    assert _tools(after) == {"search_notes"}
    seen = _seen(after)
    text = json.dumps(seen)
    if context == "full":
        assert len(seen) == 5 and "2 * 21" in text and "transfer_to_billing" in text
    elif context == "summary":
        assert len(seen) == 1  # one message holding the request and the work so far, no raw tool items
        assert PROMPT in text and "calculator" in text and "42" in text
        # The wording every loop uses (tools/handoffs.py), on both engines: the Agents SDK's own history folding
        # (`nest_handoff_history`) is not used.
        assert "Handed over by agent front: a payment question" in text and "<CONVERSATION HISTORY>" not in text
        assert "calculator(expression='2 * 21') -> ok: 42" in text
    else:
        assert len(seen) == 1 and seen[0]["role"] == "user" and "calculator" not in text
        assert json.dumps(seen[0]["content"]) in (json.dumps(PROMPT), json.dumps([{"type": "text", "text": PROMPT}]))
    assert status["active_agent"] == "billing"
    [handoff] = [e for e in events if e["type"] == "handoff"]
    assert (handoff["agent"], handoff["target"], handoff["context"]) == ("front", "billing", context)
    assert [e["agent"] for e in events if e["type"] == "agent_turn"] == ["front", "front", "billing"]
    history = await handle.fetch_history()
    completed = [
        e.activity_task_completed_event_attributes
        for e in history.events
        if e.HasField("activity_task_completed_event_attributes")
    ]
    assert any(b"answered_by" in p.data and b"billing" in p.data for c in completed for p in c.result.payloads)
    if context == "summary" and model.startswith("anthropic") and os.environ.get("RECORD_HISTORIES") == "1":
        (HISTORIES / "blackbox_handoff.json").write_text(json.dumps(history.to_json_dict(), indent=1))


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
async def test_a_handoff_to_an_agent_not_offered_is_an_error_for_the_model(client, tmp_path, monkeypatch, engine):
    model, fake = engine
    _write_agents(tmp_path, monkeypatch, agents_toml("full"))
    fake.push(Reply(tool_calls=[("transfer_to_payroll", {})]), Reply(text="I will answer myself: 42."))
    _, result, status, _ = await _run_front(client, model, "bb-handoff-unknown")

    assert result["status"] == "completed" and result["output"] == "I will answer myself: 42."
    assert "FRONT DESK" in _system(fake.requests[1])
    answer = fake.requests[1]
    refused = json.dumps(answer.tool_outputs() if model.startswith("openai") else answer.tool_results())
    assert "cannot hand off to 'payroll' (it can hand off to: billing)" in refused
    assert status["active_agent"] == "front"


async def test_a_black_box_may_not_hand_off_to_an_agent_that_is_not_read_only(
    client, settings, tmp_path, monkeypatch, fake_llm
):
    _write_agents(tmp_path, monkeypatch, agents_toml("full", billing_read_only=False))
    with pytest.raises(WorkflowFailureError) as failed:
        await _run_front(client, ENGINES[0], "bb-handoff-writer")
    message = str(failed.value.cause)
    assert "agent: agent 'front' can hand off to 'billing', which is not read-only" in message, message
    assert fake_llm.requests == []  # refused when pinned: no model was asked


@pytest.mark.parametrize("model", ENGINES)
async def test_a_crash_right_after_a_handoff_resumes_with_the_new_agent(
    client, settings, fake_llm, worker_processes, tmp_path, model
):
    path = tmp_path / "agents.toml"
    path.write_text(agents_toml("summary"))
    with FakeOpenAI() as fake_openai:
        fake = fake_openai if model.startswith("openai") else fake_llm
        env = {"AGENTS_FILE": str(path), "OPENAI_BASE_URL": fake_openai.url}
        first = worker_processes(**env)
        fake.push(
            Reply(tool_calls=[("calculator", {"expression": "2 * 21"})]),
            Reply(tool_calls=[("transfer_to_billing", {"reason": "payment"})]),
            Reply(text="slow", delay=60),  # billing's first call: the worker dies meanwhile
            Reply(text="Billing here, after the crash."),
        )
        handle = await client.start_workflow(
            "BlackBoxAgentWorkflow",
            {"agent": "front", "prompt": PROMPT, "model": model},
            id=workflow_id("bb-handoff-crash"),
            task_queue=settings.task_queue,
        )
        await eventually(lambda: len(fake.requests) >= 3 or None, timeout=60)
        first.kill()
        worker_processes(**env)
        result = await handle.result()

        assert result["status"] == "completed" and result["output"] == "Billing here, after the crash.", result
        calc, transfer, cut_off, retried = fake.requests  # nothing before the handoff was asked again
        assert "FRONT DESK" in _system(calc) and "FRONT DESK" in _system(transfer)
        for request in (cut_off, retried):
            assert "BILLING DESK" in _system(request) and _tools(request) == {"search_notes"}
        assert _seen(retried) == _seen(cut_off)  # the summary the handoff gave billing, restored as it was
        assert result["usage"]["llm_calls"] == 3 and result["usage"]["tool_calls"] == 1
        assert (await handle.query("status"))["active_agent"] == "billing"
