"""The `temporal` CLI path a user takes: start with JSON input, read the contract's result."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time

import pytest

from devstack.dev_server import temporal_cli
from devstack.fake_anthropic import Reply
from tests.conftest import workflow_id


async def temporal(dev_server, *args: str) -> tuple[int, str]:
    """Run `temporal <args> --address <dev server>`; return exit code and combined output."""
    proc = await asyncio.create_subprocess_exec(
        temporal_cli(),
        *args,
        "--address",
        dev_server.address,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode, out.decode()


@pytest.fixture
async def agents_queue_worker(client, settings):
    """A worker on the literal task queue `agents`, as in the README."""
    from worker import build_worker

    async with build_worker(client, dataclasses.replace(settings, task_queue="agents")):
        yield


async def test_cli_start_then_result_gives_the_contract_result(dev_server, agents_queue_worker, fake_llm):
    fake_llm.push(Reply(tool_calls=[("calculator", {"expression": "6000 * 0.2"})]), Reply(text="It is 1200."))
    wid = workflow_id("cli")
    code, out = await temporal(
        dev_server,
        "workflow",
        "start",
        "--type",
        "AgentLoopWorkflow",
        "--task-queue",
        "agents",
        "--workflow-id",
        wid,
        "--input",
        '{"prompt": "What is 6000 * 0.2?", "customer_id": "C123"}',
    )
    assert code == 0, out
    code, out = await temporal(dev_server, "workflow", "result", "--workflow-id", wid, "-o", "json")
    assert code == 0, out
    result = json.loads(out)["result"]
    assert result["status"] == "completed"
    assert result["output"] == "It is 1200."
    assert set(result["usage"]) == {"llm_calls", "tool_calls", "input_tokens", "output_tokens", "cost_usd"}
    assert result["usage"]["llm_calls"] == 2 and result["usage"]["tool_calls"] == 1
    assert result["steps"] == 3
    assert len(result["trace_id"]) == 32 and result["trace_id"] == result["trace_id"].lower()


@pytest.mark.parametrize(
    "payload, names",
    [
        ('{"prompt": 5}', "prompt: Input should be a valid string"),
        ('{"prompt": "hi", "colour": "red"}', "colour: unknown field"),
        (
            '{"prompt": "hi", "budget": {"max_steps": -1}}',
            "budget.max_steps: Input should be greater than or equal to 1",
        ),
        ('{"prompt": "hi", "model": "gpt-5"}', "model: Value error, must look like 'provider:model'"),
        ('{"prompt": "hi", "agent": "nobody"}', "agent: unknown agent 'nobody'"),
        ('"just a string"', "expected a JSON object"),
    ],
)
async def test_malformed_input_fails_the_workflow_at_once_naming_the_field(
    dev_server, client, agents_queue_worker, payload, names
):
    wid = workflow_id("bad-input")
    started = time.monotonic()
    code, out = await temporal(
        dev_server,
        "workflow",
        "start",
        "--type",
        "AgentLoopWorkflow",
        "--task-queue",
        "agents",
        "--workflow-id",
        wid,
        "--input",
        payload,
    )
    assert code == 0, out
    code, out = await temporal(dev_server, "workflow", "result", "--workflow-id", wid)
    assert code != 0
    assert names in out and "invalid input" in out
    assert time.monotonic() - started < 10
    # Failed by the first workflow task, not retried: exactly one workflow task ran.
    history = await client.get_workflow_handle(wid).fetch_history()
    assert sum(e.HasField("workflow_task_started_event_attributes") for e in history.events) == 1
    assert history.events[-1].HasField("workflow_execution_failed_event_attributes")
