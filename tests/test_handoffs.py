"""Handoffs in pattern B: an agent passes the conversation to another with `transfer_to_<agent>`, and the next
agent sees exactly what `handoff_context` promises; the switch survives a worker crash."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

from devstack.fake_anthropic import Reply
from tests.conftest import workflow_id
from tests.helpers import eventually, file_agents_worker

PROMPT = "What is 2 * 21, and how do I pay it?"
HISTORIES = Path(__file__).parent / "histories"


def agents_toml(context: str) -> str:
    return textwrap.dedent(
        f"""
        [agents.front]
        description = "Front desk"
        instructions = "FRONT DESK: calculate, then hand billing questions over."
        tools = ["calculator"]
        handoffs = ["billing"]
        handoff_context = "{context}"

        [agents.billing]
        description = "Takes payments questions"
        instructions = "BILLING DESK: explain how to pay."
        tools = ["search_notes"]
        """
    )


@pytest.fixture
def handoff_file(tmp_path, monkeypatch):
    def write(context: str) -> str:
        path = tmp_path / "agents.toml"
        path.write_text(agents_toml(context))
        monkeypatch.setenv("AGENTS_FILE", str(path))
        return str(path)

    return write


async def _with_file_worker(client, run):
    async with file_agents_worker(client) as settings:
        return await run(settings)


def _system(request) -> str:
    return json.dumps(request.body["system"])


@pytest.mark.parametrize("context", ["full", "summary", "none"])
async def test_the_next_agent_sees_what_handoff_context_promises(client, settings, fake_llm, handoff_file, context):
    handoff_file(context)
    fake_llm.push(
        Reply(tool_calls=[("calculator", {"expression": "2 * 21"})]),
        Reply(tool_calls=[("transfer_to_billing", {"reason": "a payment question"})]),
        Reply(text="Billing here: pay 42 by card."),
    )

    async def run(worker_settings):
        handle = await client.start_workflow(
            "AgentLoopWorkflow",
            {"agent": "front", "prompt": PROMPT},
            id=workflow_id(f"handoff-{context}"),
            task_queue=worker_settings.task_queue,
        )
        result = await handle.result()
        status = await handle.query("status")
        return handle, result, status

    handle, result, status = await _with_file_worker(client, run)
    assert result["status"] == "completed" and result["output"] == "Billing here: pay 42 by card."
    assert status["agent"] == "front" and status["active_agent"] == "billing"
    first, _, after = fake_llm.requests
    assert "FRONT DESK" in _system(first) and {t["name"] for t in first.body["tools"]} == {
        "calculator",
        "transfer_to_billing",
    }
    # The agent handed to: its instructions and its tools from now on (it may not hand back).
    assert "BILLING DESK" in _system(after) and {t["name"] for t in after.body["tools"]} == {"search_notes"}
    seen = json.dumps(after.messages)
    if context == "full":
        assert "2 * 21" in seen and "Transferred to billing." in seen and len(after.messages) == 5
    elif context == "summary":
        [message] = after.messages
        assert PROMPT in seen and "Handed over by agent front: a payment question" in seen and "calculator" in seen
        assert message["role"] == "user"
    else:
        assert after.messages == [{"role": "user", "content": [{"type": "text", "text": PROMPT}]}]
    history = await handle.fetch_history()
    if context == "summary" and os.environ.get("RECORD_HISTORIES") == "1":  # tests/test_replay.py replays it
        (HISTORIES / "agent_loop_handoff.json").write_text(json.dumps(history.to_json_dict(), indent=1))
    summaries = [e.user_metadata.summary.data for e in history.events if e.HasField("user_metadata")]
    assert any(b"call_llm (billing)" in s for s in summaries)  # the timeline says which agent each step ran as


async def test_a_handoff_to_an_agent_not_offered_is_an_error_for_the_model(client, settings, fake_llm, handoff_file):
    handoff_file("full")
    fake_llm.push(
        Reply(tool_calls=[("transfer_to_payroll", {})]),
        Reply(text="I will answer myself: 42."),
    )

    async def run(worker_settings):
        return await client.execute_workflow(
            "AgentLoopWorkflow",
            {"agent": "front", "prompt": PROMPT},
            id=workflow_id("handoff-unknown"),
            task_queue=worker_settings.task_queue,
        )

    result = await _with_file_worker(client, run)
    assert result["output"] == "I will answer myself: 42."
    [refused] = fake_llm.requests[1].tool_results()
    assert refused["is_error"] and "cannot hand off to 'payroll' (it can hand off to: billing)" in json.dumps(refused)


async def test_a_crash_right_after_a_handoff_resumes_with_the_new_agent(
    client, settings, fake_llm, worker_processes, tmp_path
):
    path = tmp_path / "agents.toml"
    path.write_text(agents_toml("full"))
    first = worker_processes(AGENTS_FILE=str(path))
    fake_llm.push(
        Reply(tool_calls=[("transfer_to_billing", {"reason": "payment"})]),
        Reply(text="slow", delay=30),  # billing's first call: the worker dies meanwhile
        Reply(text="Billing here, after the crash."),
    )
    handle = await client.start_workflow(
        "AgentLoopWorkflow",
        {"agent": "front", "prompt": PROMPT},
        id=workflow_id("handoff-crash"),
        task_queue=settings.task_queue,
    )
    await eventually(lambda: len(fake_llm.requests) >= 2 or None, timeout=30)
    first.kill()
    worker_processes(AGENTS_FILE=str(path))
    result = await handle.result()
    assert result["status"] == "completed" and result["output"] == "Billing here, after the crash."
    retried = fake_llm.requests[-1]
    assert "BILLING DESK" in _system(retried) and {t["name"] for t in retried.body["tools"]} == {"search_notes"}


@pytest.mark.parametrize("workflow", ["AgentLoopWorkflow", "BlackBoxAgentWorkflow"])
async def test_calls_a_reply_asks_for_after_its_handoff_are_answered_unrun(
    client, settings, fake_llm, tmp_path, monkeypatch, workflow
):
    # The same rule in a loop and in a (Claude) black box: the rest of the reply was the agent handed from's.
    path = tmp_path / "agents.toml"
    path.write_text(agents_toml("full") + "read_only = true\n")  # a black box hands off to read-only agents only
    monkeypatch.setenv("AGENTS_FILE", str(path))
    fake_llm.push(
        Reply(tool_calls=[("transfer_to_billing", {"reason": "payment"}), ("calculator", {"expression": "2 * 21"})]),
        Reply(text="Billing here."),
    )

    async def run(worker_settings):
        return await client.execute_workflow(
            workflow,
            {"agent": "front", "prompt": PROMPT},
            id=workflow_id("handoff-rest"),
            task_queue=worker_settings.task_queue,
        )

    result = await _with_file_worker(client, run)
    assert result["status"] == "completed" and result["output"] == "Billing here.", result
    assert result["usage"]["tool_calls"] == 0  # the calculator call did not run
    transferred, unrun = fake_llm.requests[1].tool_results()
    assert transferred["content"] == "Transferred to billing." and not transferred["is_error"]
    assert unrun["content"] == "Not run: the conversation was handed to billing." and unrun["is_error"]
    assert "BILLING DESK" in _system(fake_llm.requests[1])
