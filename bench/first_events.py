"""How soon `python -m progress follow` shows a run's first events, for this checkout and another, side by side.

Used by `bench/streaming.py --first-events [--before PATH]`. Each checkout (this one as `after`, and the one at PATH
as `before`) gets its own `python worker.py` process and task queue on one dev server, with one scripted fake model;
each round runs a hybrid run (plan, two specialists as black boxes, the plan's approval, execution with a tool and
its approval, notification) per checkout and scenario, one after the other, so load drifts hit them alike. A run's
follower is a fresh `python -m progress follow --json <id>` of the same checkout, as a user would type it:

- `with-run`: launched right after the run is started (the user of issue 30);
- `waiting`: launched `--lead` seconds before the run is started (someone already following the id).

An event's delay is when its line reached the follower's stdout minus when it happened (its `at`), or minus the
follower's launch when it happened before that. Approvals are sent `APPROVE_AFTER` seconds after they are requested.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.offline import offline_env

APPROVE_AFTER = 0.5
SCENARIOS = ("with-run", "waiting")
FIRST = 5
"""How many of a run's first events count as its first events."""
PROMPT = "My income is 6000 a month; plan a budget and decide whether to invest 500 a month."


@dataclasses.dataclass
class Followed:
    """One run as its follower saw it: when it was launched, and each event with when its line arrived."""

    launched: float
    events: list[tuple[dict[str, Any], float]]
    history_events: int = 0

    def delays(self, which: str = "text-less") -> list[float]:
        """Arrival minus max(happened, launched): of the `first` events, every `text-less` one, or one type's."""
        if which == "first":
            chosen = self.events[:FIRST]
        elif which == "text-less":
            chosen = [(e, t) for e, t in self.events if e["type"] != "llm_delta"]
        else:
            chosen = [(e, t) for e, t in self.events if e["type"] == which]
        return [t - max(datetime.fromisoformat(e["at"]).timestamp(), self.launched) for e, t in chosen]

    @property
    def startup(self) -> float:
        """Launch to the first line."""
        return self.events[0][1] - self.launched if self.events else float("nan")


def checkout_env(code: Path, base: dict[str, str]) -> dict[str, str]:
    """The environment for processes of the checkout at `code`: its packages first on the path."""
    return {**base, "PYTHONPATH": str(code)}


def start_worker(code: Path, env: dict[str, str], queue: str, log: Path) -> subprocess.Popen[bytes]:
    """`python worker.py` of the checkout at `code`, polling `queue`."""
    return subprocess.Popen(
        [sys.executable, str(code / "worker.py")],
        cwd=code,
        env={**checkout_env(code, env), "TEMPORAL_TASK_QUEUE": queue},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


async def approve_as_asked(handle: Any) -> None:
    """Approve each request `APPROVE_AFTER` seconds after it shows in the status query (until cancelled)."""
    decided: set[str] = set()
    while True:
        try:
            pending = (await handle.query("status"))["pending_approvals"]
        except Exception:
            pending = []
        for request in pending:
            if request["request_id"] not in decided:
                decided.add(request["request_id"])
                await asyncio.sleep(APPROVE_AFTER)
                await handle.signal("approve", {"approver": "alice", "request_id": request["request_id"]})
        await asyncio.sleep(0.1)


async def follow_one(client: Any, code: Path, env: dict[str, str], queue: str, scenario: str, lead: float) -> Followed:
    """One hybrid run on `queue`, followed by a fresh `progress follow` process of the checkout at `code`."""
    workflow_id = f"bench-first-{uuid.uuid4().hex[:8]}"

    async def launch() -> tuple[asyncio.subprocess.Process, float]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "progress",
            "follow",
            "--json",
            workflow_id,
            cwd=code,
            env=checkout_env(code, env),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
        return proc, time.time()

    if scenario == "waiting":
        proc, launched = await launch()
        await asyncio.sleep(lead)
    start = {"prompt": PROMPT, "approval": {"approvers": ["alice"]}}
    handle = await client.start_workflow("HybridAgentWorkflow", start, id=workflow_id, task_queue=queue)
    if scenario == "with-run":
        proc, launched = await launch()
    approver = asyncio.create_task(approve_as_asked(handle))
    events: list[tuple[dict[str, Any], float]] = []
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(300):
            async for line in proc.stdout:
                events.append((json.loads(line), time.time()))
            await proc.wait()
        result = await asyncio.wait_for(handle.result(), 60)
    finally:
        approver.cancel()
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert result["status"] == "completed", result
    assert events and events[-1][0]["type"] == "run_finished", "the follower did not see the run finish"
    history = await handle.fetch_history()
    return Followed(launched, events, len(history.events))


async def wait_polling(client: Any, queue: str, worker: subprocess.Popen[bytes], timeout: float = 120) -> None:
    """Until a worker polls `queue` (the worker processes load for several seconds)."""
    from devstack.stack import wait_for_worker

    if not await wait_for_worker(client, queue, worker, timeout):
        raise RuntimeError(f"no worker polls {queue} (exit status {worker.poll()})")


def pct(values: list[float], q: float) -> float:
    """The q-quantile (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] if ordered else float("nan")


def report(results: dict[tuple[str, str], list[Followed]]) -> None:
    """Per scenario: each checkout's figures and after/before ratios (medians over runs; delays pooled)."""
    names = sorted({name for name, _ in results}, key=lambda n: n != "before")
    for scenario in SCENARIOS:
        rows = {name: results.get((name, scenario), []) for name in names}
        if not any(rows.values()):
            continue
        print(f"\nscenario {scenario}: {', '.join(f'{n} {len(r)} runs' for n, r in rows.items())}")
        print(f"{'':34s}" + "".join(f"{n:>10s}" for n in names) + ("     ratio" if len(names) == 2 else ""))
        lines = {
            "launch to first line, median (s)": lambda r: statistics.median(f.startup for f in r),
            "first 5 events, p95 delay (s)": lambda r: pct([d for f in r for d in f.delays("first")], 0.95),
            "first 5 events, max delay (s)": lambda r: max(d for f in r for d in f.delays("first")),
            "non-text events, median (s)": lambda r: statistics.median(d for f in r for d in f.delays()),
            "non-text events, p95 (s)": lambda r: pct([d for f in r for d in f.delays()], 0.95),
            "stage events, p95 (s)": lambda r: pct([d for f in r for d in f.delays("stage")], 0.95),
            "agent_turn events, p95 (s)": lambda r: pct([d for f in r for d in f.delays("agent_turn")], 0.95),
            "history events per run, median": lambda r: statistics.median(f.history_events for f in r),
        }
        for label, figure in lines.items():
            values = [figure(r) if r else float("nan") for r in rows.values()]
            ratio = f"{values[1] / values[0]:9.2f}x" if len(values) == 2 and values[0] else ""
            print(f"{label:34s}" + "".join(f"{v:10.2f}" for v in values) + ratio)


async def measure(
    client: Any, base_env: dict[str, str], checkouts: dict[str, Path], rounds: int, lead: float, root: Path
) -> dict[tuple[str, str], list[Followed]]:
    """`rounds` rounds; in each, every checkout runs each scenario once. Stops the workers it starts."""
    queues = {name: f"bench-first-{name}-{uuid.uuid4().hex[:6]}" for name in checkouts}
    workers = {
        name: start_worker(code, base_env, queues[name], root / f"worker-{name}.log")
        for name, code in checkouts.items()
    }
    results: dict[tuple[str, str], list[Followed]] = {}
    try:
        for name in checkouts:
            await wait_polling(client, queues[name], workers[name])
        for round_ in range(rounds):
            for scenario in SCENARIOS:
                for name, code in checkouts.items():
                    followed = await follow_one(client, code, base_env, queues[name], scenario, lead)
                    results.setdefault((name, scenario), []).append(followed)
                    print(
                        f"round {round_ + 1} {scenario:8s} {name:6s} events {len(followed.events):3d} "
                        f"first line after {followed.startup:5.2f} s, first 5 p95 "
                        f"{pct(followed.delays('first'), 0.95):5.2f} s",
                        flush=True,
                    )
    finally:
        for proc in workers.values():
            proc.terminate()
        for proc in workers.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
    return results


def main_env(root: Path, server_address: str, model_url: str) -> dict[str, str]:
    """What every process of the bench runs with: the bench's server, fake model and files; no real services."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LANGFUSE_", "TEMPORAL_", "PAYLOAD_"))}
    env.pop("AGENT_MODEL", None)
    return {**env, "TEMPORAL_ADDRESS": server_address, **offline_env(model_url, root)}
