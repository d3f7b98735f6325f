"""The storm: all three patterns under random SIGKILLs of several workers, one of which replays every task.

Seeded (`STORM_SEED`) and bounded (about 90 s). Four worker processes (tests/storm_worker.py: the product's
worker with an activity journal) serve one task queue; one has `WORKER_MAX_CACHED_WORKFLOWS=0`, so every
workflow task it takes is a replay of the whole history so far. A killer SIGKILLs a random other worker every few
seconds and starts it again; an approver decides every pending request as it appears, by signal or by the
`decide` update. The runs cover pattern B (with a write that needs approval), black boxes on both engines
with approval between steps, handoffs inside black boxes, input screening by a screening agent, and the
hybrid; replies stream (LLM_STREAMING on, as shipped).

What must hold: every run completes; no workflow task fails; no activity Temporal recorded as completed is
executed again (the journal); no note is written twice; every run replays on a fresh replayer.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import sys
import textwrap
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import WorkflowTaskFailedCause
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle

from config.settings import Settings
from devstack.dev_server import DevServer, free_port, start_dev_server
from devstack.fake_anthropic import Reply
from devstack.fake_openai import FakeOpenAI
from devstack.scripted_http import Fault, Step, StreamError, Truncated
from devstack.scripted_model import respond as scripted_respond
from service.connect import connect
from tests.conftest import workflow_id
from tests.helpers import ROOT, WorkerProcess
from tests.replay_check import assert_replays
from tests.test_blackbox import specialist_responder
from tools.notes import NoteStore

SEED = int(os.environ.get("STORM_SEED", "28"))
STORM_SECONDS = float(os.environ.get("STORM_SECONDS", "60"))
"""How long the killer runs; the runs then get up to `SETTLE_SECONDS` more with every worker up."""
SETTLE_SECONDS = 30.0 + STORM_SECONDS / 2
SCALE = int(os.environ.get("STORM_SCALE", "1"))
"""Copies of the run mix (a longer storm by hand: STORM_SCALE=3 STORM_SECONDS=240 STORM_SEED=7)."""
RESTART_AT = 0.4
"""The server is killed and started again this far into the storm."""
FAULT_RATE = 0.08
"""Share of model requests that meet a provider fault: an overload inside a 200 stream, a cut stream, a 429."""
WORKERS = 4
REPLY_DELAY = 0.25
CHUNK_DELAY = 0.04
ANTHROPIC = "anthropic:claude-sonnet-5-5"
OPENAI = "openai:gpt-5"
APPROVER = "storm"
START_TIMEOUT = 120.0
"""A worker process imports for several seconds, more while three others start beside it on two cores."""

AGENTS = textwrap.dedent(
    """
    [agents.front]
    description = "Front desk"
    instructions = "FRONT DESK: calculate, then hand billing questions over."
    tools = ["calculator"]
    handoffs = ["billing"]
    handoff_context = "summary"
    read_only = true

    [agents.billing]
    description = "Takes payment questions"
    instructions = "BILLING DESK: explain how to pay."
    tools = ["search_notes"]
    read_only = true

    [agents.screened]
    instructions = "SCREENED DESK: you answer questions about orders."
    tools = []

    [agents.screened.guardrails]
    scope = "Questions about the caller's own orders"
    screening_agent = "gatekeeper"

    [agents.gatekeeper]
    instructions = "GATEKEEPER: decide whether an input is within the scope. Answer JSON only."
    tools = []
    output_schema = { type = "object", properties = { allowed = { type = "boolean" }, reason = { type = "string" } }, required = ["allowed"] }
    """
)


def _system(body: dict[str, Any]) -> str:
    """The agent's instructions: Messages `system` (a string or text blocks) or Responses `instructions`."""
    system = body.get("system") or body.get("instructions") or ""
    return system if isinstance(system, str) else " ".join(b.get("text", "") for b in system)


def _answered(body: dict[str, Any], tool: str) -> bool:
    """Whether the conversation already holds a call of `tool` (either wire format)."""
    return tool in json.dumps(body.get("messages") or body.get("input") or [])


PARALLEL_PROMPT = "PARALLEL: what is 6000 * 0.2, and what do my notes say about budgets?"
"""A loop run whose model asks for two read tools at once: they run side by side as local activities."""


def desk_reply(body: dict[str, Any]) -> Reply | None:
    """The storm's own agents, the same on both wire formats; None for the built-in roles."""
    system = _system(body)
    if PARALLEL_PROMPT in json.dumps(body.get("messages") or body.get("input") or [])[:400]:
        if _answered(body, "search_notes"):
            return Reply(text="1200, and no notes about budgets.")
        return Reply(tool_calls=[("calculator", {"expression": "6000 * 0.2"}), ("search_notes", {"query": "budget"})])
    if system.startswith("GATEKEEPER"):
        return Reply(text=json.dumps({"allowed": True}))
    if system.startswith("SCREENED DESK"):
        return Reply(text="Order 7 ships tomorrow.")
    if system.startswith("BILLING DESK"):
        return Reply(text="Billing here: pay 42 by card.")
    if system.startswith("FRONT DESK"):
        if not _answered(body, "calculator"):
            return Reply(tool_calls=[("calculator", {"expression": "2 * 21"})])
        return Reply(tool_calls=[("transfer_to_billing", {"reason": "a payment question"})])
    return None


FAULTS = random.Random(SEED)
"""The fakes' own generator: they answer on their server threads, so draws interleave differently each run."""


def paced(reply: Reply, overload: str) -> Step:
    """Slow enough that kills land mid-reply, streamed word by word; now and then a provider fault instead."""
    draw = FAULTS.random()
    if draw < FAULT_RATE / 3:
        return StreamError(overload, "Overloaded", text="Let me", delay=REPLY_DELAY)
    if draw < 2 * FAULT_RATE / 3:
        return Truncated(reply, cut=2, delay=REPLY_DELAY)
    if draw < FAULT_RATE:
        return Fault(429, "rate limited", retry_after=0.2)
    reply.delay, reply.chunk_delay = REPLY_DELAY, CHUNK_DELAY
    return reply


def anthropic_responder(body: dict[str, Any]) -> Step:
    return paced(desk_reply(body) or scripted_respond(body), "overloaded_error")


def openai_responder(body: dict[str, Any]) -> Step:
    return paced(desk_reply(body) or specialist_responder()(body), "server_error")


def storm_runs() -> list[tuple[str, str, dict[str, Any], int]]:
    """(label, workflow type, input, notes it writes) of every run in the storm."""
    approval = {"approvers": [APPROVER]}
    note_prompt = "What is {} * 0.2? Then save a note with the answer."
    specialists = [{"agent": "budget", "prompt": "Split 5000."}, {"agent": "analysis", "prompt": "Project 1000."}]
    runs: list[tuple[str, str, dict[str, Any], int]] = []
    for n in (6000, 7000, 8000):
        runs.append((f"loop-{n}", "AgentLoopWorkflow", {"prompt": note_prompt.format(n), "approval": approval}, 1))
    runs.append(("parallel-reads", "AgentLoopWorkflow", {"prompt": PARALLEL_PROMPT}, 0))
    for model in (ANTHROPIC, ANTHROPIC, OPENAI):
        runs.append(
            (
                f"gated-{model.split(':')[0]}",
                "BlackBoxAgentWorkflow",
                {
                    "prompt": "advise",
                    "model": model,
                    "steps": specialists,
                    "approval_between_steps": True,
                    "approval": approval,
                },
                0,
            )
        )
    for model in (ANTHROPIC, OPENAI):
        runs.append(
            (
                f"handoff-{model.split(':')[0]}",
                "BlackBoxAgentWorkflow",
                {"agent": "front", "prompt": "What is 2 * 21, and how do I pay it?", "model": model},
                0,
            )
        )
    runs.append(("screened", "BlackBoxAgentWorkflow", {"agent": "screened", "prompt": "Where is order 7?"}, 0))
    hybrid = "My income is 6000 a month; plan a budget and decide whether to invest 500 a month."
    for n in range(2):
        runs.append((f"hybrid-{n}", "HybridAgentWorkflow", {"prompt": hybrid, "approval": approval}, 1))
    return [(f"{label}-{copy}", *rest) for copy in range(SCALE) for label, *rest in runs]


@dataclass
class Storm:
    """What the storm did, for its assertions and its closing figures."""

    rng: random.Random
    workers: list[WorkerProcess]
    client: Client
    server: DevServer | None = None
    db_file: str = ""
    kills: int = 0
    restarts: int = 0
    decisions: Counter[str] = field(default_factory=Counter)
    decided: dict[tuple[str, str], float] = field(default_factory=dict)
    restarting: list[WorkerProcess] = field(default_factory=list)


@pytest.fixture
def fake_openai(monkeypatch):
    with FakeOpenAI(responder=openai_responder) as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.url)
        yield fake


async def test_runs_survive_a_storm_of_worker_kills(settings, fake_llm, fake_openai, worker_process_env, tmp_path):
    fake_llm.responder = anthropic_responder
    agents = tmp_path / "agents.toml"
    agents.write_text(AGENTS)
    journal = tmp_path / "journal.jsonl"
    # A server of the storm's own, so that restarting it mid-storm leaves the session's server alone.
    port, db_file = free_port(), str(tmp_path / "storm.db")
    server = start_dev_server(port=port, ui_port=None, db_file=db_file)
    env = {
        **worker_process_env,
        "TEMPORAL_ADDRESS": server.address,
        "OPENAI_BASE_URL": fake_openai.url,
        "AGENTS_FILE": str(agents),
        "STORM_JOURNAL": str(journal),
        "NOTIFY_OUTBOX": str(tmp_path / "outbox.jsonl"),
        "LLM_STREAMING": "1",
        # The script's own folder (tests/) heads its sys.path: this checkout's root must come before any other
        # checkout the venv has installed (editable), or the storm would test that one.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    command = [sys.executable, str(ROOT / "tests" / "storm_worker.py")]
    workers = [
        WorkerProcess(
            {**env, **({"WORKER_MAX_CACHED_WORKFLOWS": "0"} if i == 0 else {})},
            tmp_path / f"worker-{i}.log",
            command=command,
        )
        for i in range(WORKERS)
    ]
    storm: Storm | None = None
    try:
        await server.wait_serving()
        client = await connect(Settings.from_env(), target_host=server.address)
        storm = Storm(random.Random(SEED), workers, client, server=server, db_file=db_file)
        await asyncio.gather(*(asyncio.to_thread(w.start, START_TIMEOUT) for w in workers))
        ids = await start_runs(storm, settings.task_queue)
        elapsed = await weather(storm, ids)
        handles = {label: storm.client.get_workflow_handle(wid) for label, wid in ids.items()}
        results = {label: await outcome(h) for label, h in handles.items()}
        histories = {label: await h.fetch_history() for label, h in handles.items()}
        await assert_replays(storm.client, "tests/test_storm.py", ids.values())
    finally:
        for proc in workers:
            proc.stop()
        (storm.server if storm is not None and storm.server is not None else server).stop()

    assert all(r["status"] == "completed" for r in results.values()), json.dumps(
        {k: r["status"] for k, r in results.items()}
    )
    failed_tasks = workflow_task_failures(histories)
    assert not failed_tasks, f"workflow tasks failed: {failed_tasks}"
    reruns = completed_activities_run_again(histories, journal)
    assert not reruns, f"activities executed again after Temporal recorded them completed: {reruns}"
    notes = NoteStore(settings.notes_db).all()
    written = Counter(n.idempotency_key for n in notes)
    assert all(n == 1 for n in written.values())
    assert len(notes) == sum(expected for *_, expected in storm_runs()), [(n.title, n.body) for n in notes]

    replays = tasks_by_identity(histories, cache0_pids(workers[0]))
    print(
        f"\nstorm (seed {SEED}): {len(ids)} runs, {storm.kills} kills, {storm.restarts} server restart, {replays} "
        f"workflow tasks replayed whole by the cache-0 worker, {sum(storm.decisions.values())} decisions "
        f"({dict(storm.decisions)}), {len(failed_tasks)} failed workflow tasks, {elapsed:.0f} s"
    )
    # The cache-0 worker has no sticky queue, so it takes only tasks from the shared queue (a run's first, and those
    # a killed worker left): 3 to 19 per storm in the runs measured, each a replay of the whole history.
    assert storm.kills >= 5 and replays >= 3 and storm.restarts == 1, (storm.kills, replays, storm.restarts)


def test_the_rerun_check_tells_a_lost_tasks_local_read_from_a_rerun(tmp_path):
    """The journal check on a made-up history: worker 11's workflow task timed out while it was starved, worker 22
    ran the calculator (a local activity) and recorded its marker; 11 then started the calculator late (benign:
    its task never saw the marker), and worker 11 began attempt 1 of a regular activity after attempt 2 completed
    (a stale attempt). Worker 33 started the calculator after taking a task that held the marker (a re-run), and
    the attempt that completed, delivered again after its completion, is one too."""
    from google.protobuf.timestamp_pb2 import Timestamp
    from temporalio.api.history.v1 import HistoryEvent

    def event(event_id: int, at: float, **attributes: Any) -> HistoryEvent:
        stamp = Timestamp()
        stamp.FromNanoseconds(int(at * 1e9))
        return HistoryEvent(event_id=event_id, event_time=stamp, **attributes)

    def task_started(event_id: int, at: float, pid: int) -> HistoryEvent:
        return event(event_id, at, workflow_task_started_event_attributes={"identity": f"{pid}@host"})

    marker_data = json.dumps({"activity_id": "4", "activity_type": "run_tool"}).encode()
    marker = {"marker_name": "core_local_activity", "details": {"data": {"payloads": [{"data": marker_data}]}}}
    events = [
        task_started(3, 100.0, 11),
        task_started(6, 110.0, 22),
        event(8, 110.5, marker_recorded_event_attributes=marker),
        event(9, 110.6, activity_task_scheduled_event_attributes={"activity_id": "5"}),
        event(10, 110.9, activity_task_started_event_attributes={"scheduled_event_id": 9, "attempt": 2}),
        event(11, 111.0, activity_task_completed_event_attributes={"scheduled_event_id": 9, "started_event_id": 10}),
        task_started(13, 112.0, 33),
    ]
    history = type("History", (), {"run_id": "r1", "events": events})()

    def start(pid: int, at: float, activity_id: str, local: bool, attempt: int = 1) -> str:
        line = {"kind": "start", "workflow_id": "w", "run_id": "r1", "activity_id": activity_id, "type": "run_tool"}
        return json.dumps({**line, "attempt": attempt, "local": local, "at": at, "pid": pid})

    journal = tmp_path / "journal.jsonl"
    benign = [
        start(22, 110.2, "4", True),
        start(11, 111.5, "4", True),  # the starved worker's local read, after the marker its task never saw
        start(22, 110.7, "5", False, attempt=2),
        start(11, 111.6, "5", False, attempt=1),  # attempt 1 begun late, after attempt 2 completed
    ]
    journal.write_text("\n".join(benign) + "\n")
    assert completed_activities_run_again({"w": history}, journal) == []

    again = [start(33, 112.5, "4", True), start(11, 112.6, "5", False, attempt=2)]
    journal.write_text("\n".join([*benign, *again]) + "\n")
    assert completed_activities_run_again({"w": history}, journal) == [
        "w run_tool #4 attempt 1",
        "w run_tool #5 attempt 2",
    ]


async def weather(storm: Storm, ids: dict[str, str]) -> float:
    """Kill workers at random and restart the server once while approving as requests come; then let runs finish.

    Returns the seconds from the first kill to the last run closing; fails if a run is still open by then.
    """
    began = time.monotonic()
    killer = asyncio.create_task(kill_at_random(storm))
    approver = asyncio.create_task(approve_as_they_come(storm, ids))
    try:
        await asyncio.sleep(STORM_SECONDS * RESTART_AT)
        await restart_server(storm)
        await asyncio.sleep(STORM_SECONDS * (1 - RESTART_AT))
    finally:
        killer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await killer
    try:
        for proc in storm.workers:  # every worker up for the runs still going
            if proc.proc is None or proc.proc.poll() is not None:
                await asyncio.to_thread(proc.start, START_TIMEOUT)
        closed = await wait_closed(storm, ids, SETTLE_SECONDS)
    finally:
        approver.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await approver
    open_runs = [wid for wid, done in zip(ids.values(), closed) if not done]
    assert not open_runs, f"runs still open after the storm: {open_runs}"
    return time.monotonic() - began


async def restart_server(storm: Storm) -> None:
    """SIGKILL the server mid-storm and start it again on the same port and file, as after a crash."""
    assert storm.server is not None
    address = storm.server.address
    storm.server.kill()
    await asyncio.sleep(storm.rng.uniform(0.5, 2.0))
    port = int(address.rsplit(":", 1)[1])
    storm.server = await asyncio.to_thread(start_dev_server, port=port, ui_port=None, db_file=storm.db_file)
    await storm.server.wait_serving()
    storm.client = await connect(Settings.from_env(), target_host=storm.server.address)
    storm.restarts += 1


async def outcome(handle: WorkflowHandle) -> dict[str, Any]:
    """The run's result, or its failure as a result-shaped dict (so one assertion lists every run's outcome)."""
    try:
        return await handle.result()
    except WorkflowFailureError as exc:
        return {"status": f"workflow failed: {exc.cause}"}


async def start_runs(storm: Storm, queue: str) -> dict[str, str]:
    """Start the mix in a seeded order; label -> workflow id."""
    runs = storm_runs()
    storm.rng.shuffle(runs)
    ids = {}
    for label, workflow, payload, _ in runs:
        handle = await storm.client.start_workflow(
            workflow, payload, id=workflow_id(f"storm-{label}"), task_queue=queue
        )
        ids[label] = handle.id
    return ids


async def kill_at_random(storm: Storm) -> None:
    """SIGKILL a random worker (not the cache-0 one) every 1.5-4 s and start it again a moment later."""
    restarts: set[asyncio.Task] = set()
    try:
        while True:
            await asyncio.sleep(storm.rng.uniform(1.5, 4.0))
            # The cache-0 worker (the first) is spared, so that it stays up to take tasks: each one a whole replay.
            victim = storm.rng.choice(storm.workers[1:])
            if victim in storm.restarting:
                continue  # not polling yet: a kill now would test start-up, not recovery
            victim.kill()
            storm.restarting.append(victim)
            storm.kills += 1
            pause = storm.rng.uniform(0.0, 1.5)
            task = asyncio.create_task(_restart(storm, victim, pause))
            restarts.add(task)
            task.add_done_callback(restarts.discard)
    finally:
        await asyncio.gather(*restarts, return_exceptions=True)


async def _restart(storm: Storm, proc: WorkerProcess, pause: float) -> None:
    await asyncio.sleep(pause)
    try:
        await asyncio.to_thread(proc.start, START_TIMEOUT)
    finally:
        storm.restarting.remove(proc)


async def approve_as_they_come(storm: Storm, ids: dict[str, str]) -> None:
    """Decide each pending request as it shows, by signal or `decide` update (seeded); again if it stays pending."""
    while True:
        for wid in ids.values():
            handle = storm.client.get_workflow_handle(wid)
            with contextlib.suppress(Exception):  # a query can fail while no worker is up: ask again later
                status = await asyncio.wait_for(handle.query("status"), timeout=5)
                for pending in status.get("pending_approvals", []):
                    await _decide(handle, pending["request_id"], storm)
        await asyncio.sleep(0.3)


async def _decide(handle: WorkflowHandle, request_id: str, storm: Storm) -> None:
    key = (handle.id, request_id)
    if time.monotonic() - storm.decided.get(key, -1e9) < 5:
        return
    storm.decided[key] = time.monotonic()
    if storm.rng.random() < 0.5:
        await handle.signal("approve", {"approver": APPROVER, "request_id": request_id, "comment": "storm"})
        storm.decisions["signal"] += 1
    else:
        update = {"request_id": request_id, "approved": True, "approver": APPROVER, "comment": "storm"}
        await asyncio.wait_for(handle.execute_update("decide", update), timeout=10)
        storm.decisions["update"] += 1


async def wait_closed(storm: Storm, ids: dict[str, str], timeout: float) -> list[bool]:
    deadline = time.monotonic() + timeout
    while True:
        closed = [
            (await storm.client.get_workflow_handle(wid).describe()).status != WorkflowExecutionStatus.RUNNING
            for wid in ids.values()
        ]
        if all(closed) or time.monotonic() > deadline:
            return closed
        await asyncio.sleep(0.5)


def workflow_task_failures(histories: dict[str, Any]) -> list[str]:
    """Failed workflow tasks, but for a signal that came while the run was completing (Temporal retries those)."""
    benign = {WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_UNHANDLED_COMMAND}
    failures = []
    for label, history in histories.items():
        for event in history.events:
            if event.HasField("workflow_task_failed_event_attributes"):
                attrs = event.workflow_task_failed_event_attributes
                if attrs.cause not in benign:
                    failures.append(f"{label}: {WorkflowTaskFailedCause.Name(attrs.cause)}: {attrs.failure.message}")
    return failures


def completed_activities_run_again(histories: dict[str, Any], journal: Path) -> list[str]:
    """Journal entries that executed an activity again after Temporal had recorded it completed.

    Regular activities: a start after their ActivityTaskCompleted event, of the attempt that completed or a later
    one (the server hands out no task of a completed activity, so any such start is a second delivery). An earlier
    attempt started late is not one: its worker took the task, was starved past the heartbeat timeout before the
    activity body began, and the retry completed elsewhere meanwhile (at-least-once, as Temporal specifies it).

    Local activities: a start by a worker whose workflow task already held the marker that records the result, that
    is, whose last workflow task for the run before that start began after the marker (event ids, not clocks). A
    worker whose workflow task was lost (it timed out while that worker's CPU was starved) may start the local
    activity after another worker recorded the marker: its workflow task never saw the marker and its completion
    is refused. That is how local activities are specified, and why only short reads run locally; it is not a
    re-run of a completed one. Comparing the start's clock time with the marker's flagged it as one (a CI run did).
    """
    done_at: dict[tuple[str, str], tuple[float, int]] = {}
    """(run id, activity id) -> when it completed, and the attempt that did."""
    marker_ids: dict[tuple[str, str], int] = {}
    task_starts: dict[tuple[str, str], list[tuple[float, int]]] = {}
    """(run id, worker pid) -> (time, event id) of each workflow task that worker started."""
    for history in histories.values():
        scheduled: dict[int, str] = {}
        attempts: dict[int, int] = {}
        for event in history.events:
            at = event.event_time.ToDatetime().timestamp()
            if event.HasField("activity_task_scheduled_event_attributes"):
                scheduled[event.event_id] = event.activity_task_scheduled_event_attributes.activity_id
            elif event.HasField("activity_task_started_event_attributes"):
                attempts[event.event_id] = event.activity_task_started_event_attributes.attempt
            elif event.HasField("activity_task_completed_event_attributes"):
                completed = event.activity_task_completed_event_attributes
                done_at[(history.run_id, scheduled[completed.scheduled_event_id])] = (
                    at,
                    attempts[completed.started_event_id],
                )
            elif event.HasField("workflow_task_started_event_attributes"):
                pid = event.workflow_task_started_event_attributes.identity.split("@", 1)[0]
                task_starts.setdefault((history.run_id, pid), []).append((at, event.event_id))
            elif event.HasField("marker_recorded_event_attributes"):
                marker = event.marker_recorded_event_attributes
                if marker.marker_name == "core_local_activity":
                    data = json.loads(marker.details["data"].payloads[0].data)
                    marker_ids[(history.run_id, str(data["activity_id"]))] = event.event_id
    reruns = []
    for line in journal.read_text().splitlines():
        entry = json.loads(line)
        if entry["kind"] != "start":
            continue
        key = (entry["run_id"], str(entry["activity_id"]))
        if entry["local"]:
            marker_id = marker_ids.get(key)
            began = [eid for at, eid in task_starts.get((entry["run_id"], str(entry["pid"])), []) if at <= entry["at"]]
            again = marker_id is not None and bool(began) and max(began) > marker_id
        else:
            at, attempt = done_at.get(key, (float("inf"), 0))
            again = entry["at"] > at and entry["attempt"] >= attempt
        if again:
            reruns.append(f"{entry['workflow_id']} {entry['type']} #{entry['activity_id']} attempt {entry['attempt']}")
    return reruns


def cache0_pids(proc: WorkerProcess) -> list[str]:
    """Every pid the cache-0 worker had over the storm, from its log's 'worker polling ... (pid N)' lines."""
    text = proc.log_path.read_text(errors="replace")
    return [line.rsplit("(pid ", 1)[1].rstrip(")") for line in text.splitlines() if "worker polling" in line]


def tasks_by_identity(histories: dict[str, Any], pids: list[str]) -> int:
    """Workflow tasks taken by the given worker processes (identity `pid@host`)."""
    prefixes = tuple(f"{pid}@" for pid in pids)
    return sum(
        1
        for history in histories.values()
        for event in history.events
        if event.HasField("workflow_task_started_event_attributes")
        and event.workflow_task_started_event_attributes.identity.startswith(prefixes)
    )
