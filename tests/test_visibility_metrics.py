"""Finding runs by search attribute, and the Prometheus endpoint after a run."""

from __future__ import annotations

import json
import re
import subprocess
import urllib.request
import uuid

import pytest
from temporalio.client import WorkflowFailureError

from devstack.dev_server import free_port, temporal_cli
from devstack.fake_anthropic import Reply
from devstack.scripted_http import Fault
from tests.conftest import workflow_id
from tests.helpers import eventually, pending_approvals

_SAMPLE = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)$")


def by_prompt(body: dict):
    """Complete or refuse (HTTP 400, not retried) depending on the prompt, whatever order runs arrive in."""
    prompt = body["messages"][0]["content"][0]["text"]
    return Fault(400, "prompt is too long") if prompt.startswith("fail") else Reply(text=f"done: {prompt}")


async def test_visibility_query_by_customer_and_status_returns_exactly_the_matching_runs(
    client, dev_server, worker, fake_llm
):
    fake_llm.responder = by_prompt
    customer, other = f"C-{uuid.uuid4().hex[:8]}", f"C-{uuid.uuid4().hex[:8]}"
    plan = [("ok 1", customer), ("fail 1", customer), ("ok 2", customer), ("fail 2", other), ("ok 3", other)]
    handles = {}
    for prompt, who in plan:
        handles[prompt] = await client.start_workflow(
            "AgentLoopWorkflow",
            {"prompt": prompt, "customer_id": who},
            id=workflow_id("visibility"),
            task_queue=worker.task_queue,
        )
    for prompt, handle in handles.items():
        if prompt.startswith("fail"):
            with pytest.raises(WorkflowFailureError):
                await handle.result()
        else:
            assert (await handle.result())["status"] == "completed"

    async def ids(query: str) -> set[str]:
        return {w.id async for w in client.list_workflows(query)}

    failed_query = f'AgentStatus="failed" AND CustomerId="{customer}"'
    expected = {handles["fail 1"].id}
    await eventually(lambda: _equals(ids(failed_query), expected), timeout=20)  # visibility is eventually consistent
    assert await ids(f'CustomerId="{customer}"') == {handles[p].id for p in ("ok 1", "fail 1", "ok 2")}
    assert await ids(f'AgentStatus="completed" AND CustomerId="{other}"') == {handles["ok 3"].id}
    assert await ids(f'AgentPattern="B" AND AgentName="assistant" AND CustomerId="{other}"') == {
        handles[p].id for p in ("fail 2", "ok 3")
    }

    # The command docs/observability.md shows, as a user types it.
    listed = subprocess.run(
        [temporal_cli(), "workflow", "list", "--address", dev_server.address, "--query", failed_query, "-o", "json"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert {row["execution"]["workflowId"] for row in map(json.loads, json_rows(listed))} == expected


async def _equals(ids_awaitable, expected: set[str]) -> bool:
    return await ids_awaitable == expected


def json_rows(output: str) -> list[str]:
    """`temporal workflow list -o json` prints one JSON array, or one object per line (by CLI version)."""
    text = output.strip()
    if text.startswith("["):
        return [json.dumps(row) for row in json.loads(text)]
    return [line for line in text.splitlines() if line.strip()]


def scrape(port: int) -> dict[tuple[str, frozenset], float]:
    """Prometheus text format as {(name, labels): value}."""
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    samples = {}
    for line in body.splitlines():
        if line and not line.startswith("#") and (m := _SAMPLE.match(line)):
            labels = frozenset(re.findall(r'(\w+)="([^"]*)"', m["labels"] or ""))
            samples[(m["name"], labels)] = float(m["value"])
    return samples


def total(samples: dict, name: str, **labels: str) -> float:
    """Sum of a metric over every series carrying `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


async def test_metrics_endpoint_serves_agent_metrics_after_a_run(client, settings, fake_llm, worker_processes):
    port = free_port()
    worker_processes(WORKER_METRICS_PORT=str(port))
    fake_llm.push(
        Reply(tool_calls=[("delete_everything", {})]),  # refused by the guardrails, told to the model
        Reply(tool_calls=[("calculator", {"expression": "6000 * 0.2"})]),
        Reply(tool_calls=[("write_note", {"title": "Answer", "body": "1200"})]),  # waits for approval
        Reply(text="Saved 1200."),
    )
    handle = await client.start_workflow(
        "AgentLoopWorkflow",
        {"prompt": "6000 * 0.2, then save it"},
        id=workflow_id("metrics"),
        task_queue=settings.task_queue,
    )
    await pending_approvals(handle)
    await handle.signal("approve", {"approver": "alice"})
    result = await handle.result()
    assert result["status"] == "completed"
    usage = result["usage"]

    samples = await eventually(lambda: (s := scrape(port)) and total(s, "agent_runs_total") and s, timeout=20)
    assert total(samples, "agent_runs_total", workflow_type="AgentLoopWorkflow", status="completed") == 1
    assert total(samples, "agent_run_steps_sum") == result["steps"] == 7
    assert total(samples, "agent_run_tokens_sum") == usage["input_tokens"] + usage["output_tokens"]
    assert total(samples, "agent_run_cost_usd_sum") == pytest.approx(usage["cost_usd"])
    assert total(samples, "agent_llm_tokens_total", direction="input") == usage["input_tokens"]
    assert total(samples, "agent_tool_calls_total", tool="calculator", outcome="ok") == 1
    assert total(samples, "agent_tool_calls_total", tool="write_note", outcome="ok") == 1
    assert total(samples, "agent_tool_calls_total", outcome="error") == 0
    assert total(samples, "agent_guardrail_rejections_total", reason="unknown_tool") == 1
    assert total(samples, "agent_approvals_total", kind="tool_call", outcome="approved") == 1
    assert total(samples, "agent_approval_wait_seconds_count") == 1
    # The SDK's own metrics are on the same endpoint.
    assert total(samples, "temporal_activity_execution_latency_count") >= 5
