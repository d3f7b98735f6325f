"""The replay check: every workflow a test ran is replayed on a fresh replayer before its server goes away.

A run that cannot be replayed by the code that made it is a run a worker restart would wedge (every workflow
task failing with a nondeterminism error, forever). The session's dev server is checked when the suite ends
(`tests/conftest.py`, the `client` fixture); a test that runs its own server calls `assert_replays` before
stopping it. Each failure names the workflow id, the run and the test that made it.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from temporalio.client import Client, WorkflowHistory
from temporalio.worker import Replayer

from config.settings import Settings
from service.plugin import AgentServicePlugin


@dataclass
class TestWindows:
    """When each test ran (setup to teardown), so a workflow's start time names the test that made it."""

    spans: list[tuple[float, float, str]] = field(default_factory=list)
    current: tuple[float, str] | None = None

    def begin(self, nodeid: str) -> None:
        self.current = (time.time(), nodeid)

    def end(self) -> None:
        if self.current is not None:
            started, nodeid = self.current
            self.spans.append((started, time.time(), nodeid))
            self.current = None

    def test_at(self, when: datetime | None) -> str:
        """The test running at `when`; a start that falls between tests is named by the nearest earlier one."""
        if when is None:
            return "an unknown test"
        stamp = when.timestamp()
        open_spans = [*self.spans, *([(self.current[0], float("inf"), self.current[1])] if self.current else [])]
        earlier = [s for s in open_spans if s[0] <= stamp + 0.5]  # server and test clocks are the same machine's
        return max(earlier, key=lambda s: s[0])[2] if earlier else "a test before the first one"


WINDOWS = TestWindows()
"""Filled by the hooks in tests/conftest.py."""

REPLAYED: list[tuple[int, float]] = []
"""(runs, seconds) of each replay check the session ran, for its closing summary."""

ENVIRONMENTS: list[dict[str, str]] = []
"""Other environments runs were encoded under (a test's own payload key or blob store): a run the session's
converter cannot decode is replayed again under each of these before it counts as a failure."""


def register_environment(env: dict[str, str]) -> dict[str, str]:
    """Note that some runs are encoded under `env` (e.g. PAYLOAD_ENCRYPTION_KEY), so the final check can read them."""
    ENVIRONMENTS.append(dict(env))
    return env


def replayer(env: dict[str, str] | None = None) -> Replayer:
    """A replayer configured like the worker: the product's workflows, converter (codec), sandbox and interceptors."""
    return Replayer(workflows=[], plugins=[AgentServicePlugin(Settings.from_env(env))])


async def _each(histories: list[WorkflowHistory]) -> AsyncIterator[WorkflowHistory]:
    for history in histories:
        yield history


async def _replay(histories: list[WorkflowHistory]) -> dict[str, Exception]:
    """Run id -> why it did not replay, for each of `histories` that did not under any known environment."""
    results = await replayer().replay_workflows(_each(histories), raise_on_replay_failure=False)
    failures = dict(results.replay_failures)
    for env in ENVIRONMENTS:
        if not failures:
            break
        retried = [h for h in histories if h.run_id in failures]
        again = await replayer(env).replay_workflows(_each(retried), raise_on_replay_failure=False)
        failures = {run_id: failures[run_id] for run_id in again.replay_failures}
    return failures


async def _histories(client: Client, query: str) -> AsyncIterator[tuple[WorkflowHistory, datetime | None]]:
    async for execution in client.list_workflows(query):
        handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
        yield await handle.fetch_history(), execution.start_time


async def replay_failures(client: Client, *, made_by: str | None = None, query: str = "") -> list[str]:
    """Replay every run the server lists; one line per run that does not replay (empty: all replayed).

    `made_by` names the test when the server served just one; otherwise the test is found by start time.
    """
    started: dict[str, datetime | None] = {}
    histories: list[WorkflowHistory] = []
    began = time.monotonic()
    async for history, start_time in _histories(client, query):
        histories.append(history)
        started[history.run_id] = start_time
    lines = await _failure_lines(histories, lambda run_id: made_by or WINDOWS.test_at(started.get(run_id)))
    REPLAYED.append((len(histories), time.monotonic() - began))
    return lines


async def _failure_lines(histories: list[WorkflowHistory], made_by: Callable[[str], str]) -> list[str]:
    """Replay `histories`; one line per run that does not replay, naming its workflow, run and test."""
    workflow_of = {h.run_id: h.workflow_id for h in histories}
    return [
        f"workflow {workflow_of[run_id]} (run {run_id}), made by {made_by(run_id)}: {failure}"
        for run_id, failure in (await _replay(histories)).items()
    ]


async def assert_replays(client: Client, made_by: str, workflow_ids: Iterable[str] | None = None) -> None:
    """Fail unless every run on `client`'s server (or those of `workflow_ids`) replays cleanly."""
    if workflow_ids is None:
        failures = await replay_failures(client, made_by=made_by)
    else:
        failures = await _replay_ids(client, made_by, list(workflow_ids))
    assert not failures, "runs that do not replay:\n" + "\n".join(failures)


async def _replay_ids(client: Client, made_by: str, workflow_ids: list[str]) -> list[str]:
    """For servers without visibility (the time-skipping server): replay the named runs."""
    histories = [await client.get_workflow_handle(wid).fetch_history() for wid in workflow_ids]
    return await _failure_lines(histories, lambda _: made_by)
