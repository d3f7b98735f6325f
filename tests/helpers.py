"""Shared test plumbing: worker processes, polling for a state, reading histories."""

from __future__ import annotations

import ast
import asyncio
import contextlib
import inspect
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHandle, WorkflowHistory

from tests.forkserver import ForkedProcess, fork_server, forkable

ROOT = Path(__file__).resolve().parents[1]


async def eventually(check: Callable[[], Any], timeout: float = 20.0, interval: float = 0.1) -> Any:
    """Poll `check` (plain or async) until it returns something truthy; fail with the last value after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if inspect.isawaitable(last):
                last = await last
        except Exception as exc:  # e.g. a query before the first workflow task
            last = exc
        else:
            if last:
                return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s; last value: {last!r}")


async def pending_approvals(handle: WorkflowHandle, count: int = 1, timeout: float = 20.0) -> list[dict]:
    """Wait until the run shows `count` pending approvals; return them."""

    async def check() -> list[dict] | None:
        status = await handle.query("status")
        pending = status["pending_approvals"]
        return pending if len(pending) >= count else None

    return await eventually(check, timeout)


class WorkerProcess:
    """`python worker.py` as a real OS process, so tests can SIGKILL it."""

    def __init__(
        self,
        env: dict[str, str],
        log_path: Path,
        *,
        command: list[str] | None = None,
        cwd: Path = ROOT,
        inherit_env: bool = True,
    ) -> None:
        self.env = env
        self.log_path = log_path
        self.command = command or [sys.executable, str(ROOT / "worker.py")]
        self.cwd = cwd
        self.inherit_env = inherit_env
        self.proc: subprocess.Popen | ForkedProcess | None = None

    def start(self, timeout: float = 90.0) -> WorkerProcess:
        """Start and wait until it polls."""
        env = {**os.environ, **self.env} if self.inherit_env else dict(self.env)
        log = open(self.log_path, "ab")
        start_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        if forkable(self.command):  # tests/forkserver.py: the same process, without 4.5 s of imports
            log.close()
            self.proc = fork_server().spawn(self.command, env, self.cwd, self.log_path)
        else:
            self.proc = subprocess.Popen(self.command, cwd=self.cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while "worker polling" not in self.log_path.read_text(errors="replace")[start_offset:]:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.log_path.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker did not start:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.05)
        return self

    def kill(self) -> None:
        """SIGKILL: no cleanup, no graceful shutdown."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait for the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def stop(self) -> None:
        """Whatever state it is in, make sure it is gone."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()


async def event_types(handle: WorkflowHandle) -> list[str]:
    """The event types of a run's history, in order (e.g. 'ACTIVITY_TASK_SCHEDULED')."""
    history = await handle.fetch_history()
    return [e.WhichOneof("attributes").removesuffix("_event_attributes").upper() for e in history.events]


def resolver_for(registry: Any) -> Any:
    """An `AgentResolver` on `registry` for activities built by hand (requests without a pinned spec)."""
    import tempfile

    from activities.agent_specs import AgentResolver, SpecStore
    from payloads.blobs import LocalBlobStore

    return AgentResolver(registry, SpecStore(LocalBlobStore(tempfile.mkdtemp(prefix="specs-"))))


def patch_ids(history: WorkflowHistory) -> list[str]:
    """The `workflow.patched` ids recorded in a run's history, in order."""
    found = []
    for event in history.events:
        if event.HasField("marker_recorded_event_attributes"):
            marker = event.marker_recorded_event_attributes
            if marker.marker_name == "core_patch":
                found.append(json.loads(marker.details["patch-data"].payloads[0].data)["id"])
    return found


def patches_on(history: WorkflowHistory) -> set[str]:
    """The patches a run has: those its patch-set marker turns on (workflows/patches.py), or, for runs recorded
    before patch sets, the patch markers it recorded one by one."""
    from workflows.patches import PATCH_SETS

    recorded = patch_ids(history)
    sets = [int(p.removeprefix("patch-set-")) for p in recorded if p.startswith("patch-set-")]
    if not sets:
        return set(recorded)
    return {patch_id for ids in PATCH_SETS[: max(sets)] for patch_id in ids}


@contextlib.asynccontextmanager
async def file_agents_worker(client: Any) -> AsyncIterator[Any]:
    """An in-process worker on the environment's settings with its agents file, tool modules and MCP servers
    loaded (AGENTS_FILE, TOOL_MODULES); yields the settings. MCP sessions are closed afterwards."""
    from config.settings import Settings
    from tools.loader import load_registry
    from worker import build_worker

    settings = Settings.from_env()
    loaded = await load_registry(settings)
    try:
        async with build_worker(client, settings, loaded.registry):
            yield settings
    finally:
        await loaded.close()


def parse_python(path: Path) -> ast.Module:
    """`ast.parse` of a source file, retried past CPython 3.11's thread-unsafe AST depth check (gh-106905).

    Another thread of the test process (a worker's logging formatting a traceback, which parses the line for its
    carets) can move the interpreter-wide counter mid-conversion; the parse itself is pure, so a retry is exact.
    """
    for attempt in range(3):
        try:
            return ast.parse(path.read_text(), str(path))
        except SystemError as exc:
            if "recursion depth mismatch" not in str(exc) or attempt == 2:
                raise
    raise AssertionError("unreachable")
