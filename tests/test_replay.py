"""Replay: checked-in histories must replay without nondeterminism after any code change.

Re-record after an intentional, versioned change with
    RECORD_HISTORIES=1 .venv/bin/python -m pytest tests/test_replay.py -k record
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from temporalio.client import WorkflowFailureError, WorkflowHistory
from temporalio.worker import Replayer

from config.settings import Settings
from devstack.fake_anthropic import Reply
from devstack.histories import generations
from devstack.long_run import log_reader, long_run_prompt, seed_log
from devstack.scripted_model import respond
from service.plugin import AgentServicePlugin
from tests.conftest import workflow_id
from tests.helpers import eventually, pending_approvals

HISTORIES = Path(__file__).parent / "histories"


def replayer() -> Replayer:
    """A replayer configured like the worker (offloaded payloads are read back through the same codec)."""
    return Replayer(workflows=[], plugins=[AgentServicePlugin(Settings.from_env())])


async def _approval_run(client, settings, fake_llm):
    fake_llm.push(
        Reply(tool_calls=[("calculator", {"expression": "6000 * 0.2"})]),
        Reply(tool_calls=[("write_note", {"title": "Answer", "body": "1200"})]),
        Reply(tool_calls=[("write_note", {"title": "Again", "body": "1200"})]),
        Reply(text="Saved once; the second was rejected."),
    )
    handle = await client.start_workflow(
        "AgentLoopWorkflow",
        {"prompt": "What is 6000 * 0.2? Then save a note.", "approval": {"approvers": ["alice"]}},
        id=workflow_id("replay-approval"),
        task_queue=settings.task_queue,
    )
    await pending_approvals(handle)
    await handle.signal("approve", {"approver": "mallory"})  # not listed: recorded, ignored
    await handle.signal("approve", {"approver": "alice", "comment": "ok"})
    await pending_approvals(handle)
    await handle.execute_update(
        "decide", {"request_id": "req-2", "approved": False, "approver": "alice", "comment": "once is enough"}
    )
    await handle.result()
    return handle


async def _budget_run(client, settings, fake_llm):
    fake_llm.push(*[Reply(tool_calls=[("calculator", {"expression": f"{i} * 2"})]) for i in range(2)])
    handle = await client.start_workflow(
        "AgentLoopWorkflow",
        {"prompt": "loop", "budget": {"max_steps": 4}},
        id=workflow_id("replay-budget"),
        task_queue=settings.task_queue,
    )
    await handle.result()
    return handle


async def _invalid_input_run(client, settings, fake_llm):
    handle = await client.start_workflow(
        "AgentLoopWorkflow", {"prompt": 5}, id=workflow_id("replay-invalid"), task_queue=settings.task_queue
    )
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    return handle


async def _blackbox_run(client, settings, fake_llm):
    fake_llm.responder = respond
    handle = await client.start_workflow(
        "BlackBoxAgentWorkflow",
        {
            "prompt": "plan my money",
            "parallel": True,
            "steps": [
                {"agent": "budget", "prompt": "My income is 6000 a month."},
                {"agent": "analysis", "prompt": "Invest 500 a month for 10 years at 5%."},
            ],
        },
        id=workflow_id("replay-blackbox"),
        task_queue=settings.task_queue,
    )
    await handle.result()
    return handle


async def _hybrid_run(client, settings, fake_llm):
    fake_llm.responder = respond
    handle = await client.start_workflow(
        "HybridAgentWorkflow",
        {"prompt": "My income is 6000 a month; plan a budget and decide whether to invest 500 a month."},
        id=workflow_id("replay-hybrid"),
        task_queue=settings.task_queue,
    )
    for _ in ("plan", "write_note in stage 4"):
        [pending] = await pending_approvals(handle, timeout=60)
        await handle.signal("approve", {"approver": "alice", "request_id": pending["request_id"]})
        await eventually(lambda rid=pending["request_id"]: _no_longer_pending(handle, rid), timeout=30)
    await handle.result()
    return handle


async def _cancelled_run(client, settings, fake_llm):
    """A tool call, then a cancel while a write waits for approval: the run closes Canceled and is archived."""
    fake_llm.push(
        Reply(tool_calls=[("calculator", {"expression": "6000 * 0.2"})]),
        Reply(tool_calls=[("write_note", {"title": "Answer", "body": "1200"})]),
    )
    handle = await client.start_workflow(
        "AgentLoopWorkflow", {"prompt": "save 1200"}, id=workflow_id("replay-cancelled"), task_queue=settings.task_queue
    )
    await pending_approvals(handle)
    await handle.cancel()
    with pytest.raises(WorkflowFailureError):
        await handle.result()
    return handle


async def _fan_out_budget_run(client, settings, fake_llm):
    """Four black boxes at once under `max_tokens: 1000`: each fits its calls into its share, then stops."""
    from tests.test_budget_bounds import FOUR_STEPS, keeps_calling_tools

    fake_llm.responder = keeps_calling_tools
    handle = await client.start_workflow(
        "BlackBoxAgentWorkflow",
        {"prompt": "plan", "steps": FOUR_STEPS, "parallel": True, "budget": {"max_tokens": 1000}},
        id=workflow_id("replay-fan-out-budget"),
        task_queue=settings.task_queue,
    )
    assert (await handle.result())["status"] == "budget_exceeded"
    return handle


async def _no_longer_pending(handle, request_id: str) -> bool:
    status = await handle.query("status")
    return all(p["request_id"] != request_id for p in status["pending_approvals"])


async def _gateway_approval_run(client, settings, fake_llm):
    """Patch approval-gateway: `["*"]` honoured for a decision as any approver, and the request announced."""
    fake_llm.push(Reply(tool_calls=[("write_note", {"title": "Answer", "body": "1200"})]), Reply(text="Saved."))
    handle = await client.start_workflow(
        "AgentLoopWorkflow",
        {"prompt": "Save 1200 as a note.", "approval": {"approvers": ["*"]}},
        id=workflow_id("replay-gateway"),
        task_queue=settings.task_queue,
    )
    await pending_approvals(handle)
    await handle.signal("approve", {"approver": "mallory", "request_id": "req-9"})  # no such request: ignored
    await handle.execute_update("decide", {"request_id": "req-1", "approved": True, "approver": "carol"})
    assert (await handle.result())["status"] == "completed"
    return handle


async def _fan_in_run(client, settings, fake_llm):
    # One reply with 40 reads: 32 run, side by side (local activities), the rest are refused.
    calls = [("calculator", {"expression": f"{i} + 1"}) for i in range(40)]
    fake_llm.push(Reply(tool_calls=calls), Reply(text="done"))
    handle = await client.start_workflow(
        "AgentLoopWorkflow",
        {"prompt": "many sums", "budget": {"max_steps": 100}},
        id=workflow_id("replay-fan-in"),
        task_queue=settings.task_queue,
    )
    await handle.result()
    return handle


async def _hybrid_budget_run(client, settings, fake_llm):
    import dataclasses

    # The specialists spend what the planner left: no one is asked to approve the plan.
    fake_llm.responder = lambda body: dataclasses.replace(respond(body), output_tokens=1500)
    handle = await client.start_workflow(
        "HybridAgentWorkflow",
        {
            "prompt": "My income is 6000 a month; plan a budget and decide whether to invest 500 a month.",
            "budget": {"max_tokens": 4000},
        },
        id=workflow_id("replay-hybrid-budget"),
        task_queue=settings.task_queue,
    )
    await handle.result()
    return handle


SCENARIOS = {
    "fan_in": _fan_in_run,
    "hybrid_budget": _hybrid_budget_run,
    "approval": _approval_run,
    "gateway_approval": _gateway_approval_run,
    "budget": _budget_run,
    "invalid_input": _invalid_input_run,
    "blackbox": _blackbox_run,
    "hybrid": _hybrid_run,
    "cancelled": _cancelled_run,
    "fan_out_budget": _fan_out_budget_run,
}


HISTORY_NAMES = {
    name: name
    if name in ("blackbox", "hybrid", "hybrid_budget")
    else "blackbox_fan_out_budget"
    if name == "fan_out_budget"
    else f"agent_loop_{name}"
    for name in SCENARIOS
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
async def test_fresh_history_replays(client, worker, fake_llm, scenario):
    handle = await SCENARIOS[scenario](client, worker, fake_llm)
    history = await handle.fetch_history()
    if os.environ.get("RECORD_HISTORIES") == "1":
        (HISTORIES / f"{HISTORY_NAMES[scenario]}.json").write_text(json.dumps(history.to_json_dict(), indent=1))
    await replayer().replay_workflow(history)


FILE_AGENT = "agent_loop_file_agent"
"""A run of an agent from an agents file (tests/fixtures/agents) using a module tool and an MCP tool."""


async def test_a_file_agent_history_replays_on_a_worker_without_the_file(
    client, settings, fake_llm, monkeypatch, tmp_path
):
    fixtures = Path(__file__).parent / "fixtures" / "agents"
    monkeypatch.setenv("AGENTS_FILE", str(fixtures / "agents.toml"))
    monkeypatch.setenv("TOOL_MODULES", "support_tools")
    monkeypatch.setenv("CRM_DB", str(tmp_path / "crm.db"))
    monkeypatch.setenv("CRM_PID_FILE", str(tmp_path / "crm.pid"))
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.syspath_prepend(str(fixtures))
    from tools.loader import load_registry
    from worker import build_worker

    loaded = await load_registry(Settings.from_env())
    fake_llm.push(
        Reply(tool_calls=[("order_total", {"order_id": "A1"}), ("crm__lookup_order", {"order_id": "A1"})]),
        Reply(text=json.dumps({"order_id": "A1", "refunded": 0, "message": "A1 is shipped; nothing refunded."})),
    )
    try:
        async with build_worker(client, Settings.from_env(), loaded.registry):
            handle = await client.start_workflow(
                "AgentLoopWorkflow",
                {"agent": "support", "prompt": "Status of A1?"},
                id=workflow_id("replay-file-agent"),
                task_queue=settings.task_queue,
            )
            assert (await handle.result())["output"]["order_id"] == "A1"
    finally:
        await loaded.close()
    history = await handle.fetch_history()
    if os.environ.get("RECORD_HISTORIES") == "1":
        (HISTORIES / f"{FILE_AGENT}.json").write_text(json.dumps(history.to_json_dict(), indent=1))
    await replayer().replay_workflow(history)  # the replayer has only the built-ins: the spec is in the history


LONG_RUN = "agent_loop_long"
"""A 50-step loop with offloaded conversation, summaries and continue-as-new: one file per generation."""


async def test_long_run_generations_replay(client, settings, fake_llm, monkeypatch):
    monkeypatch.setenv("HISTORY_MAX_EVENTS", "200")  # about 30 loop steps per generation (the search runs locally)
    monkeypatch.setenv("CONTEXT_SUMMARY_TOKENS", "8000")  # a summary every dozen steps
    seed_log(settings.notes_db, 50, 2000)
    fake_llm.responder = log_reader
    from worker import build_worker

    async with build_worker(client, Settings.from_env()):
        handle = await client.start_workflow(
            "AgentLoopWorkflow",
            {"prompt": long_run_prompt(50), "budget": {"max_steps": 200, "max_tokens": 10**8, "max_cost_usd": 1000.0}},
            id=workflow_id("replay-long"),
            task_queue=settings.task_queue,
        )
        await handle.result()
    histories = await generations(client, handle.id, handle.first_execution_run_id or handle.run_id)
    assert len(histories) >= 2
    if os.environ.get("RECORD_HISTORIES") == "1":
        for old in HISTORIES.glob(f"{LONG_RUN}_*.json"):
            old.unlink()
        for i, history in enumerate(histories, 1):  # compact JSON: these are the big ones
            (HISTORIES / f"{LONG_RUN}_{i}.json").write_text(json.dumps(history.to_json_dict(), separators=(",", ":")))
    for history in histories:
        await replayer().replay_workflow(history)


async def test_checked_in_histories_replay_without_nondeterminism():
    files = sorted(HISTORIES.glob("*.json"))
    # Also recorded elsewhere: a run with a handoff (test_handoffs.py), a black box resumed after a crash
    # (test_black_box_resume.py), a black box whose agent handed off inside it (test_black_box_handoffs.py).
    expected = {*HISTORY_NAMES.values(), FILE_AGENT, "agent_loop_handoff", "blackbox_resumed", "blackbox_handoff"}
    assert {f.stem for f in files} >= expected, "record histories first (see module docstring)"
    assert any(f.stem.startswith(LONG_RUN) for f in files), "record the long run's histories first"
    histories = [WorkflowHistory.from_json(f.stem, json.loads(f.read_text())) for f in files]
    failures = {}
    for history in histories:
        result = await replayer().replay_workflow(history, raise_on_replay_failure=False)
        if result.replay_failure is not None:
            failures[history.workflow_id] = str(result.replay_failure)
    assert failures == {}


def gate(*args: str) -> subprocess.CompletedProcess:
    """`python -m releases gate ARGS` from the checkout, as CI runs it."""
    command = [sys.executable, "-m", "releases", "gate", *args]
    env = {**os.environ, "PYTHONPATH": str(HISTORIES.parents[1])}
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=HISTORIES.parents[1])


def test_the_replay_gate_passes_the_checked_in_histories():
    done = gate("--histories", str(HISTORIES))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"replay gate: {len(list(HISTORIES.glob('*.json')))} runs" in done.stdout and "0 would break" in done.stdout


def test_the_replay_gate_names_a_history_the_code_cannot_replay(tmp_path):
    # The recorded run's first activity renamed: the checkout's code schedules `call_llm` where it says `plan_v0`.
    data = (HISTORIES / "agent_loop_budget.json").read_text()
    assert '"call_llm"' in data
    (tmp_path / "changed.json").write_text(data.replace('"call_llm"', '"plan_v0"', 1))
    (tmp_path / "same.json").write_text(data)
    done = gate("--histories", str(tmp_path))
    assert done.returncode == 1, done.stdout + done.stderr
    summary, *broken = done.stdout.strip().splitlines()  # nothing else: the core's own warnings are kept quiet
    assert summary == "replay gate: 2 runs (2 file) against this checkout: 1 would break"
    [line] = broken
    assert line.startswith("workflow changed (run ") and "AgentLoopWorkflow, file" in line
    assert "Nondeterminism" in line and "plan_v0" in line and "call_llm" in line
    assert gate("--histories", str(tmp_path / "missing")).returncode == 2
