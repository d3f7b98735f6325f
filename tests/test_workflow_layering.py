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


PASSED_THROUGH_MAY_IMPORT = (
    "temporalio",
    "pydantic",
    "models",
    "tools",
    "telemetry",
    "archives.models",
    "opentelemetry",
    "workflows",
    "typing",
    "dataclasses",
    "collections.abc",
    "functools",
    "math",
    "json",
    "re",
    "asyncio",
    "datetime",
    "enum",
    "itertools",
)
"""What a workflow module the sandbox passes through may import: deterministic code only (no clock, randomness,
environment, files, threads or sockets). The product packages are those the sandboxed workflow modules already
import passed through (`workflow.unsafe.imports_passed_through`). `asyncio` and `datetime` are there for
`asyncio.sleep` (a durable timer in a workflow) and for `timedelta`; their clock reads are refused below."""
CLOCK_READS = {"now", "utcnow", "today", "fromtimestamp"}
"""Clock reads, but for `workflow.now()` (the replayed time)."""
IO_BUILTINS = {"open", "input", "print", "exec", "eval"}
MUTATORS = {"append", "extend", "insert", "add", "update", "pop", "popitem", "remove", "discard", "clear", "setdefault"}


def _passthrough_offences(path: Path, passed_through: set[str]) -> list[str]:
    """Why `path`, run outside the sandbox for every run, could differ on replay or leak state between runs."""
    tree = parse_python(path)
    module_names = {
        target.id
        for node in tree.body
        if isinstance(node, (ast.Assign, ast.AnnAssign))
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name)
    }
    offences = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if isinstance(node, ast.ImportFrom) and node.module == "workflows":
                modules = [f"workflows.{a.name}" for a in node.names]
            for module in modules:
                if module == "__future__":
                    continue
                if module.startswith("workflows.") and module not in passed_through:
                    offences.append(f"imports {module}, which the sandbox does not pass through")
                elif not any(module == ok or module.startswith(ok + ".") for ok in PASSED_THROUGH_MAY_IMPORT):
                    offences.append(f"imports {module}")
        elif isinstance(node, ast.Global):
            offences.append(f"line {node.lineno}: global {', '.join(node.names)}")
        elif isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Name) and func.id in IO_BUILTINS:
                offences.append(f"line {node.lineno}: calls {func.id}()")
            replayed = (
                isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) and func.value.id == "workflow"
            )
            if isinstance(func, ast.Attribute) and func.attr in CLOCK_READS and not replayed:
                offences.append(f"line {node.lineno}: reads the clock ({func.attr}())")
            if (
                isinstance(func, ast.Attribute)
                and isinstance(func.value, ast.Name)
                and func.value.id in module_names
                and func.attr in MUTATORS
            ):
                offences.append(f"line {node.lineno}: mutates module-level {func.value.id}")
        elif isinstance(node, ast.Assign | ast.AugAssign):
            for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                if (
                    isinstance(target, ast.Subscript)
                    and isinstance(target.value, ast.Name)
                    and target.value.id in module_names
                ):
                    offences.append(f"line {node.lineno}: mutates module-level {target.value.id}")
    return offences


def test_workflow_modules_the_sandbox_passes_through_are_deterministic_and_stateless() -> None:
    """A passed-through module is imported once, outside the sandbox, and shared by every run: the sandbox neither
    refuses its clock reads nor gives each run a fresh copy. So each one may import only deterministic code, may
    not read the clock, files or environment, and may not change a module-level value. Workflow definitions
    (`@workflow.defn`) stay in the sandbox."""
    from service.plugin import SANDBOX_PASSTHROUGH

    passed_through = {m for m in SANDBOX_PASSTHROUGH if m.startswith("workflows.")}
    offenders = {}
    for module in sorted(passed_through):
        path = WORKFLOWS / f"{module.removeprefix('workflows.')}.py"
        if "@workflow.defn" in path.read_text():
            offenders[module] = ["defines a workflow"]
        elif found := _passthrough_offences(path, passed_through):
            offenders[module] = found
    assert offenders == {}
    assert len(passed_through) >= 20  # the helpers, not only the four first passed through
