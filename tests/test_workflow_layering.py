"""Workflow modules share behaviour through functions and classes, never through each other's constants."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers import parse_python
from workflows import activity_options

WORKFLOWS = Path(__file__).resolve().parents[1] / "workflows"


def _imports_from_workflows(path: Path) -> list[tuple[str, str]]:
    tree = parse_python(path)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("workflows."):
            found += [(node.module, alias.name) for alias in node.names]
    return found


def test_no_workflow_module_imports_another_modules_constants() -> None:
    offenders = [
        f"{path.name}: from {module} import {name}"
        for path in sorted(WORKFLOWS.glob("*.py"))
        for module, name in _imports_from_workflows(path)
        if name.isupper() and len(name) > 1
    ]
    assert offenders == []


def test_activities_are_called_only_through_the_call_layer() -> None:
    """Only workflows/calls.py schedules activities; every other module calls its functions."""
    scheduling = ("execute_activity", "execute_local_activity", "start_activity", "start_local_activity")
    offenders = [
        path.name
        for path in sorted(WORKFLOWS.glob("*.py"))
        if path.name != "calls.py" and any(f"workflow.{name}" in path.read_text() for name in scheduling)
    ]
    assert offenders == []


def test_every_activity_in_the_table_is_documented_and_heartbeats_where_it_runs_long() -> None:
    names = [o.name for o in activity_options.ACTIVITY_OPTIONS]
    assert len(names) == len(set(names)) == 8
    assert set(names) == {
        "call_llm",
        "run_tool",
        "invoke_agent",
        "send_notification",
        "archive_run",
        "history_limits",
        "resolve_agents",
        "notify_approval",
    }
    long_running = {
        o.name
        for o in activity_options.ACTIVITY_OPTIONS
        if o.start_to_close_timeout.total_seconds() > 60 and not o.local
    }
    assert long_running == {"call_llm", "invoke_agent"}
    assert all(activity_options.ACTIVITY_OPTIONS[names.index(n)].heartbeat_timeout is not None for n in long_running)
