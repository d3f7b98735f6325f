"""The replay gate: would this checkout's workflow code replay the runs a cluster has (or checked-in histories)?

A run the new code cannot replay is a run its first workflow task on the new code would wedge: every task
failing with a nondeterminism error. The gate fetches the open runs and the last N closed runs of each workflow
type, replays each against the checkout's workflows, and names every run that would break and why.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from temporalio.client import Client, WorkflowExecution, WorkflowHistory
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.worker import Replayer

from config.settings import Settings
from service.plugin import AgentServicePlugin
from workflows.versioning import BEHAVIORS

OPEN = 'ExecutionStatus="Running"'
_CORE_MESSAGE = re.compile(r'message: "((?:[^"\\]|\\.)*)"')


@dataclass(frozen=True)
class Candidate:
    """One run to replay, and what visibility says of it (for the report)."""

    history: WorkflowHistory
    workflow_type: str
    state: str
    """`open`, `closed` or `file`."""
    version: str = ""
    """`pinned to D.B` / `auto-upgrade on D.B` when the run is versioned; empty when unversioned or a file."""


@dataclass(frozen=True)
class Breakage:
    """A run the checkout's code cannot replay."""

    candidate: Candidate
    reason: str

    def line(self) -> str:
        """One line: which run, what it is, and why it breaks."""
        c = self.candidate
        what = ", ".join(p for p in (c.workflow_type, c.state, c.version) if p)
        found = _CORE_MESSAGE.search(self.reason)  # the replayer wraps its reason in the core's debug form
        reason = " ".join((found.group(1) if found else self.reason).split())[:400]
        return f"workflow {c.history.workflow_id} (run {c.history.run_id}; {what}): {reason}"


def product_replayer(settings: Settings) -> Replayer:
    """A replayer configured as the worker is: the checkout's workflows, converter (codec), sandbox, interceptors.

    Its own runtime logs only the core's errors: each failing run's task-failure warning would otherwise repeat,
    on stdout, the reason the gate's report already gives.
    """
    quiet = LoggingConfig(filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"))
    runtime = Runtime(telemetry=TelemetryConfig(logging=quiet))
    return Replayer(workflows=[], plugins=[AgentServicePlugin(settings)], runtime=runtime)


async def _version(client: Client, execution: WorkflowExecution) -> str:
    # Visibility's listing leaves versioning info out; describing the run has it.
    handle = client.get_workflow_handle(execution.id, run_id=execution.run_id)
    info = (await handle.describe()).raw_description.workflow_execution_info.versioning_info
    version = info.deployment_version
    if not version.build_id:
        return ""
    behavior = "pinned to" if info.behavior == 1 else "auto-upgrade on"  # VERSIONING_BEHAVIOR_PINNED == 1
    return f"{behavior} {version.deployment_name}.{version.build_id}"


async def _candidate(client: Client, execution: WorkflowExecution, state: str) -> Candidate:
    history = await client.get_workflow_handle(execution.id, run_id=execution.run_id).fetch_history()
    return Candidate(history, execution.workflow_type, state, await _version(client, execution))


async def cluster_candidates(
    client: Client, *, closed_per_type: int, types: Sequence[str] = (), query: str = ""
) -> list[Candidate]:
    """The open runs (matching `query`, if given) and the last `closed_per_type` closed runs of each type.

    The types are `types`, else the product's workflow types and every type an open run has.
    """
    where = f"{OPEN} AND ({query})" if query else OPEN
    found = [await _candidate(client, e, "open") async for e in client.list_workflows(where)]
    for workflow_type in list(types) or sorted({*BEHAVIORS, *(c.workflow_type for c in found)}):
        closed = f'WorkflowType="{workflow_type}" AND ExecutionStatus!="Running"'
        if query:
            closed += f" AND ({query})"
        if closed_per_type > 0:  # visibility lists newest first
            async for e in client.list_workflows(closed, limit=closed_per_type):
                found.append(await _candidate(client, e, "closed"))
    return found


def file_candidates(folder: Path) -> list[Candidate]:
    """Every `*.json` history in `folder` (as `temporal workflow show --output json` or the SDK writes them)."""
    found = []
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text())
        history = WorkflowHistory.from_json(path.stem, data)
        started = history.events[0].workflow_execution_started_event_attributes
        found.append(Candidate(history, started.workflow_type.name, "file"))
    return found


async def _each(candidates: Sequence[Candidate]) -> AsyncIterator[WorkflowHistory]:
    for candidate in candidates:
        yield candidate.history


async def breakages(replayer: Replayer, candidates: Sequence[Candidate]) -> list[Breakage]:
    """Replay every candidate; the ones that fail, each with the replayer's reason."""
    found = []
    for batch in _unique_runs(candidates):  # the replayer reports by run id: copies of one run go in separate batches
        results = await replayer.replay_workflows(_each(batch), raise_on_replay_failure=False)
        by_run = {c.history.run_id: c for c in batch}
        found += [Breakage(by_run[run_id], str(error)) for run_id, error in results.replay_failures.items()]
    return found


def _unique_runs(candidates: Sequence[Candidate]) -> list[list[Candidate]]:
    batches: list[list[Candidate]] = []
    for candidate in candidates:
        batch = next((b for b in batches if all(c.history.run_id != candidate.history.run_id for c in b)), None)
        if batch is None:
            batches.append(batch := [])
        batch.append(candidate)
    return batches
