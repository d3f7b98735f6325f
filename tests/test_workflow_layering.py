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
environment, files, threads or sockets). The product packages are those the workflow modules import inside
`workflow.unsafe.imports_passed_through` blocks. `asyncio` and `datetime` are there for
`asyncio.sleep` (a durable timer in a workflow) and for `timedelta`; their clock reads are refused below."""
CLOCK_READS = {"now", "utcnow", "today", "fromtimestamp"}
"""Clock reads, but for `workflow.now()` (the replayed time)."""
IO_BUILTINS = {"open", "input", "print", "exec", "eval"}
MUTATORS = {"append", "extend", "insert", "add", "update", "pop", "popitem", "remove", "discard", "clear", "setdefault"}


SHARED_MUTABLES = (ast.List, ast.Dict, ast.Set, ast.ListComp, ast.DictComp, ast.SetComp)
MUTABLE_FACTORIES = {"list", "dict", "set", "defaultdict", "deque", "Counter", "OrderedDict"}


def _class_level_mutables(tree: ast.Module) -> list[str]:
    """Mutable values a class body holds: one object every run of the worker would share."""
    found = []
    for cls in (node for node in tree.body if isinstance(node, ast.ClassDef)):
        for node in cls.body:
            if not isinstance(node, ast.Assign | ast.AnnAssign) or node.value is None:
                continue
            value = node.value
            factory = isinstance(value, ast.Call) and getattr(value.func, "id", None) in MUTABLE_FACTORIES
            if isinstance(value, SHARED_MUTABLES) or factory:
                found.append(f"line {node.lineno}: {cls.name} holds a mutable value every run would share")
    return found


def _class_attribute_writes(tree: ast.Module) -> list[str]:
    """Assignments to a class's attributes (`cls.x = `, `type(self).x = `, `Name.x = `) from code: run state shared."""
    classes = {node.name for node in tree.body if isinstance(node, ast.ClassDef)}
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Assign | ast.AugAssign):
            continue
        for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
            if not isinstance(target, ast.Attribute):
                continue
            owner = target.value
            by_name = isinstance(owner, ast.Name) and (owner.id == "cls" or owner.id in classes)
            by_type = isinstance(owner, ast.Call) and getattr(owner.func, "id", None) == "type"
            if by_name or by_type:
                found.append(f"line {node.lineno}: sets a class attribute ({ast.unparse(target)})")
    return found


def _passthrough_offences(path: Path) -> list[str]:
    """Why `path`, run outside the sandbox for every run, could differ on replay or leak state between runs."""
    tree = parse_python(path)
    offences = _class_level_mutables(tree) + _class_attribute_writes(tree)
    module_names = {
        target.id
        for node in tree.body
        if isinstance(node, (ast.Assign, ast.AnnAssign))
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if isinstance(node, ast.ImportFrom) and node.module == "workflows":
                modules = [f"workflows.{a.name}" for a in node.names]
            for module in modules:
                if module == "__future__":
                    continue
                if not any(module == ok or module.startswith(ok + ".") for ok in PASSED_THROUGH_MAY_IMPORT):
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
    """The sandbox passes the whole `workflows` package through: each module, the workflow definitions included,
    is imported once outside the sandbox and shared by every run, so the sandbox neither refuses its clock reads
    nor gives each run a fresh copy. So each one may import only deterministic code, may not read the clock, files
    or environment, may not change a module-level value, and a workflow class may hold no mutable value at class
    level nor have its attributes set: a run's state lives on its instance."""
    from service.plugin import SANDBOX_PASSTHROUGH

    assert "workflows" in SANDBOX_PASSTHROUGH
    modules = sorted(WORKFLOWS.rglob("*.py"))
    assert len(modules) >= 30  # the helpers, the four workflow modules and the unversioned ones
    offenders = {str(path.relative_to(WORKFLOWS)): found for path in modules if (found := _passthrough_offences(path))}
    assert offenders == {}


def test_the_passthrough_check_finds_what_it_must(tmp_path: Path) -> None:
    """Each rule above, planted in a workflow-like module, is reported."""
    planted = tmp_path / "planted.py"
    planted.write_text(
        "import time\n"
        "from datetime import datetime\n"
        "SEEN = []\n"
        "class Run:\n"
        "    cache = {}\n"
        "    def step(self):\n"
        "        SEEN.append(time.time())\n"
        "        type(self).last = datetime.now()\n"
        "        Run.count = 1\n"
    )
    found = " | ".join(_passthrough_offences(planted))
    for expected in (
        "imports time",
        "Run holds a mutable value",
        "mutates module-level SEEN",
        "reads the clock (now())",
        "sets a class attribute (type(self).last)",
        "sets a class attribute (Run.count)",
    ):
        assert expected in found, (expected, found)
