"""Short read-only Python tools run as local activities; writes, approvals, MCP and long tools stay activities."""

from __future__ import annotations

import asyncio
import json

import pytest

from devstack.fake_anthropic import Reply
from tests.conftest import workflow_id
from tests.fixtures.probe_tools import RAN, probe_registry
from tests.helpers import patches_on
from tools.catalog import REGISTRY
from tools.pinning import tool_of, tool_spec
from tools.registry import Tool
from worker import build_worker
from workflows.tool_plan import LOCAL_READ_TOOLS_PATCH, runs_locally


@pytest.fixture
async def probe_worker(client, settings):
    """An in-process worker whose registry has the probe tools (tests/fixtures/probe_tools.py)."""
    RAN.clear()
    async with build_worker(client, settings, probe_registry()):
        yield settings


async def tool_activities(handle) -> tuple[int, list[dict]]:
    """How many `run_tool` activities the run scheduled, and the `run_tool` local-activity markers' data."""
    scheduled, local = 0, []
    for event in (await handle.fetch_history()).events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            scheduled += event.activity_task_scheduled_event_attributes.activity_type.name == "run_tool"
        if event.HasField("marker_recorded_event_attributes"):
            marker = event.marker_recorded_event_attributes
            if marker.marker_name == "core_local_activity":
                data = json.loads(marker.details["data"].payloads[0].data)
                if data.get("activity_type") == "run_tool":
                    local.append(data)
    return scheduled, local


async def run(client, queue: str, fake_llm, calls, agent: str = "assistant") -> dict:
    fake_llm.push(Reply(tool_calls=calls), Reply(text="done"))
    handle = await client.start_workflow(
        "AgentLoopWorkflow", {"prompt": "probe", "agent": agent}, id=workflow_id("local-tools"), task_queue=queue
    )
    result = await asyncio.wait_for(handle.result(), 60)
    assert result["status"] == "completed", result
    fake_llm.assert_script_consumed()
    return {"handle": handle, "result": result}


def pinned(tool: Tool) -> Tool:
    """The tool as a run's pinned spec rebuilds it inside the workflow: the decision is made on this copy."""
    return tool_of(tool_spec(tool))


def test_only_short_approval_free_python_reads_run_locally():
    registry = probe_registry()
    assert runs_locally(pinned(REGISTRY.tools["calculator"]))
    assert runs_locally(pinned(REGISTRY.tools["search_notes"]))
    assert runs_locally(pinned(registry.tools["probe_read"]))
    assert not runs_locally(pinned(REGISTRY.tools["write_note"]))  # a write needing approval
    assert not runs_locally(pinned(registry.tools["probe_write"]))  # a write, even without approval
    assert not runs_locally(pinned(registry.tools["probe_read_long"]))  # declared 30 s: over the bound
    read = registry.tools["probe_read"]
    needs_approval = Tool(name="r", description="", schema=read.input_schema(), effect="read", requires_approval=True)
    assert not runs_locally(pinned(needs_approval))
    mcp = Tool(name="crm__lookup", description="", schema={"type": "object"}, effect="read", source="mcp:crm")
    assert not runs_locally(pinned(mcp))


async def test_a_read_tool_runs_as_a_local_activity(client, worker, fake_llm):
    ran = await run(client, worker.task_queue, fake_llm, [("calculator", {"expression": "6 * 7"})])
    assert fake_llm.requests[1].tool_results()[0]["content"] == "42"
    scheduled, local = await tool_activities(ran["handle"])
    assert scheduled == 0  # no ActivityTaskScheduled for the tool: only the two call_llm
    assert len(local) == 1
    assert LOCAL_READ_TOOLS_PATCH in patches_on(await ran["handle"].fetch_history())


async def test_a_local_tool_is_retried_with_the_same_idempotency_key(client, probe_worker, fake_llm):
    ran = await run(client, probe_worker.task_queue, fake_llm, [("probe_flaky", {"label": "x"})], agent="probe")
    assert fake_llm.requests[1].tool_results()[0]["content"] == "probe_flaky:x"
    attempts = [r for r in RAN if r.tool == "probe_flaky"]
    assert len(attempts) == 2  # the first failed, the worker retried it locally
    assert attempts[0].key == attempts[1].key
    assert attempts[0].key.startswith(ran["handle"].id + ":step-2:")
    scheduled, local = await tool_activities(ran["handle"])
    assert scheduled == 0 and len(local) == 1
    assert local[0]["attempt"] == 2


@pytest.mark.parametrize("name", ["probe_write", "probe_read_long"])
async def test_writes_and_long_tools_stay_regular_activities(client, probe_worker, fake_llm, name):
    ran = await run(client, probe_worker.task_queue, fake_llm, [(name, {"label": "w"})], agent="probe")
    assert fake_llm.requests[1].tool_results()[0]["content"] == f"{name}:w"
    scheduled, local = await tool_activities(ran["handle"])
    assert scheduled == 1 and local == []
    assert [r.tool for r in RAN] == [name]


async def test_every_activity_local_ones_included_carries_a_summary_saying_what_it_does(client, worker, fake_llm):
    """Summaries are the run's table of contents in the UI: a local activity's sits on its marker."""
    ran = await run(client, worker.task_queue, fake_llm, [("calculator", {"expression": "6 * 7"})])
    summaries: list[tuple[str, str]] = []
    for event in (await ran["handle"].fetch_history()).events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            kind = event.activity_task_scheduled_event_attributes.activity_type.name
        elif event.HasField("marker_recorded_event_attributes") and (
            event.marker_recorded_event_attributes.marker_name == "core_local_activity"
        ):
            kind = json.loads(event.marker_recorded_event_attributes.details["data"].payloads[0].data)["activity_type"]
        else:
            continue
        assert event.user_metadata.HasField("summary"), f"{kind} has no summary"
        summaries.append((kind, json.loads(event.user_metadata.summary.data)))
    assert summaries == [
        ("history_limits", "history_limits: the worker's HISTORY_* settings"),
        ("resolve_agents", "resolve_agents: pin assistant"),
        ("call_llm", "step 1: call_llm (assistant)"),
        ("run_tool", "step 2: calculator(expression='6 * 7')"),  # local: shown on its marker
        ("call_llm", "step 3: call_llm (assistant)"),
        ("archive_run", "archive_run: completed"),
    ]
