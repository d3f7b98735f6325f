"""Patch sets (workflows/patches.py): a new run decides every patch by its first command, so no marker's place in
its history can depend on what a handler or a local activity did in the same workflow task."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

from devstack.fake_anthropic import Reply
from tests.conftest import workflow_id
from tests.helpers import parse_python, patch_ids, patches_on, pending_approvals
from tests.replay_check import assert_replays
from workflows.patches import INTRODUCED_IN, PATCH_SETS, marker

WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"
NOTE = {"title": "Answer", "body": "1200"}


def test_patches_are_asked_only_through_the_patch_sets():
    callers = []
    for path in sorted(WORKFLOWS.glob("*.py")):
        for node in ast.walk(parse_python(path)):
            asks = isinstance(node, ast.Attribute) and node.attr in ("patched", "deprecate_patch")
            if asks and isinstance(node.value, ast.Name) and node.value.id == "workflow" and path.name != "patches.py":
                callers.append(f"{path.name}:{node.lineno}")
    assert callers == [], "call patches.patched(...), not workflow.patched(...)"
    # Every patch id the code declares is in a set (patches.patched refuses any other at run time).
    declared = {
        value
        for module in (
            "workflows.lifecycle",
            "workflows.handlers",
            "workflows.calls",
            "workflows.progress",
            "workflows.steered_loop",
            "workflows.loop_model",
            "workflows.loop_tools",
            "workflows.tool_plan",
            "workflows.hybrid",
            "workflows.black_box_steps",
            "models.budget",
        )
        for name, value in vars(importlib.import_module(module)).items()
        if name.endswith("_PATCH") and isinstance(value, str)
    }
    assert declared and declared <= set(INTRODUCED_IN)
    ids = [patch_id for ids in PATCH_SETS for patch_id in ids]
    assert len(ids) == len(set(ids)), "a patch id appears in two sets"


async def test_a_new_run_records_one_patch_marker_first_whatever_its_handlers_do(client, worker, fake_llm):
    fake_llm.responder = lambda body: (
        Reply(text="Saved.") if "tool_result" in str(body["messages"]) else Reply(tool_calls=[("write_note", NOTE)])
    )
    handle = await client.start_workflow(
        "AgentLoopWorkflow",
        {"prompt": "save 1200", "approval": {"approvers": ["alice"]}},
        id=workflow_id("patch-set"),
        task_queue=worker.task_queue,
    )
    await pending_approvals(handle)
    # The approve signal's handler asks a patch (`signal-needs-one-pending`); before patch sets it recorded a
    # marker wherever the handler happened to run.
    await handle.signal("approve", {"approver": "mallory"})
    await handle.signal("approve", {"approver": "alice"})
    assert (await handle.result())["status"] == "completed"
    history = await handle.fetch_history()
    assert patch_ids(history) == [marker(len(PATCH_SETS))]
    first_command = next(e for e in history.events if e.HasField("marker_recorded_event_attributes"))
    completed = next(e for e in history.events if e.HasField("workflow_task_completed_event_attributes"))
    assert first_command.event_id == completed.event_id + 1  # the first thing the first workflow task did
    assert {"signal-needs-one-pending", "approval-gateway", "input-screening"} <= patches_on(history)
    await assert_replays(client, "tests/test_patches.py", [handle.id])


def test_the_retirement_rule_frees_a_patch_once_no_open_run_needs_its_old_branch():
    from releases.patch_report import BuildGroup, PatchReport, retirable
    from workflows.patches import LEGACY

    everything = [p for ids in PATCH_SETS for p in ids]
    assert retirable(None) == everything  # nothing open: every old branch can go
    assert retirable(LEGACY) == []  # a run from before patch sets decides each patch itself
    assert retirable(1) == list(PATCH_SETS[0])  # a patch-set-1 run still needs the later sets' old branches
    assert retirable(len(PATCH_SETS)) == everything
    report = PatchReport(
        {"agents.v1": BuildGroup("agents.v1", 3, 1, "run-a"), "unversioned": BuildGroup("x", 1, 2, "b")}
    )
    lines = list(report.lines())
    assert "build agents.v1: 3 open runs, oldest patch-set-1 (e.g. run-a)" in lines
    later = [p for ids in PATCH_SETS[1:] for p in ids]  # a patch-set-1 run needs every later set's old branches
    assert f"must stay ({len(later)}): {', '.join(later)}" in lines


def test_a_history_tells_its_patch_set():
    import json

    from temporalio.client import WorkflowHistory

    from releases.patch_report import patch_set_of
    from workflows.patches import LEGACY

    histories = Path(__file__).parent / "histories"

    def patch_set(name: str) -> int:
        return patch_set_of(WorkflowHistory.from_json(name, json.loads((histories / f"{name}.json").read_text())))

    # The checked-in histories were recorded before patch sets: one marker per patch, or none at all. (A new run's
    # `patch-set-N` is read in tests/test_deployments.py.)
    assert patch_set("agent_loop_approval") == LEGACY
    assert patch_set("agent_loop_approval_until_2026-12-01") == LEGACY
