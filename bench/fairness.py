"""Fair dispatch (issue 34): how soon customer B's new runs reach their first model call while customer A keeps
hundreds of runs queued on the same task queue, with fairness on and off, side by side in one bench run.

    .venv/bin/python bench/fairness.py           # A keeps 500 runs queued, B starts 20 runs 1 s apart (~7.5 min)
    .venv/bin/python bench/fairness.py --quick   # A keeps 100 queued, B starts 8 runs 0.5 s apart (~2 min)

Each mode has a fresh dev server: `on` the product's (`matching.enableFairness=true`, one partition per task
queue), `off` the same with only fairness false; `--modes` adds variants of `on` (MODES: the server's default four
partitions, no eager activity dispatch). Runs start as the gateway starts them, on one worker with `--slots` activity slots, against FakeAnthropic
answering after `--delay` s (bench/README.md). Exit status 0 when B's p95 with fairness is within 2 s, else 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # runnable from anywhere: the repo root holds the packages
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.entry import run_bench
from bench.fairness_load import A, Arrivals, B, Starter
from devstack.dev_server import DevServer, free_port
from devstack.fake_anthropic import FakeAnthropic

TARGET_S = 2.0  # the target: B's p95 from start to first model call while A has 500 runs queued


def say(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


@dataclass
class Outcome:
    """One mode's measurements."""

    mode: str
    waits: list[float | None] = field(default_factory=list)  # B's start -> first model call, s (None: never)
    queued_at_start: list[int] = field(default_factory=list)  # A's runs not yet at the model at each B start
    wft_queue: list[float] = field(default_factory=list)  # B's first workflow task scheduled -> started, s
    llm_queue: list[float] = field(default_factory=list)  # B's first call_llm scheduled -> started, s
    a_started: int = 0


async def measure_b(starter: Starter, arrivals: Arrivals, args: argparse.Namespace, outcome: Outcome) -> list[Any]:
    """Start B's runs `args.interval` s apart; wait until each reached the model or `args.patience` passed."""
    starts: dict[str, float] = {}
    handles = []
    for n in range(args.b_runs):
        with arrivals.lock:
            outcome.queued_at_start.append(starter.started[A] - arrivals.reached[A])
        starts[f"{B}/{n}"] = time.perf_counter()
        handles.append(await starter.start(B, n))
        await asyncio.sleep(args.interval)
    deadline = time.perf_counter() + args.patience
    while time.perf_counter() < deadline and not all(tag in arrivals.first for tag in starts):
        await asyncio.sleep(0.1)
    with arrivals.lock:
        outcome.waits = [arrivals.first[t] - s if t in arrivals.first else None for t, s in starts.items()]
    return handles


async def where_b_waited(handles: list[Any], outcome: Outcome) -> None:
    """From each B run's history: how long its first workflow task and its first call_llm were queued."""
    from temporalio.api.enums.v1 import EventType as E

    with contextlib.suppress(TimeoutError):  # an activity's started event is written when the activity ends
        await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles), return_exceptions=True), 30)
    wft = (E.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED, E.EVENT_TYPE_WORKFLOW_TASK_STARTED, outcome.wft_queue)
    llm = (E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED, E.EVENT_TYPE_ACTIVITY_TASK_STARTED, outcome.llm_queue)
    for handle in handles:
        first: dict[int, float] = {}
        async for event in handle.fetch_history_events():  # call_llm is the runs' first (non-local) activity
            first.setdefault(event.event_type, event.event_time.ToDatetime().timestamp())
        for scheduled, started, into in (wft, llm):
            if scheduled in first and started in first:
                into.append(first[started] - first[scheduled])


@dataclass
class ModeDevServer(DevServer):
    """The product's dev server with some of its dynamic config values swapped for others (MODES)."""

    swaps: tuple[tuple[str | None, str], ...] = ()
    """(old, new) `--dynamic-config-value`s: `old` replaced by `new`, or `new` added when `old` is None."""

    def command(self) -> list[str]:
        cmd = super().command()
        for old, new in self.swaps:
            if old is None:
                cmd += ["--dynamic-config-value", new]
            else:
                cmd[cmd.index(old)] = new
        return cmd


MODES: dict[str, tuple[tuple[str | None, str], ...]] = {
    "on": (),
    "off": (("matching.enableFairness=true", "matching.enableFairness=false"),),
    # Variants of `on` (bench/README.md, "What limits it"): the server's default of four partitions per task queue,
    # and fairness with no eager activity dispatch.
    "on-four-partitions": (
        ("matching.numTaskqueueReadPartitions=1", "matching.numTaskqueueReadPartitions=4"),
        ("matching.numTaskqueueWritePartitions=1", "matching.numTaskqueueWritePartitions=4"),
    ),
    "on-no-eager": ((None, "system.enableActivityEagerExecution=false"),),
}


async def run_mode(mode: str, args: argparse.Namespace, root: Path) -> Outcome:
    """One fresh dev server, fake model and worker; A's backlog kept full while B's runs are measured."""
    from config.settings import Settings
    from service.connect import connect
    from worker import build_worker

    outcome, arrivals = Outcome(mode), Arrivals(args.delay)
    here = root / mode
    fake = FakeAnthropic(responder=arrivals.respond).start()
    server = ModeDevServer(
        port=free_port(),
        ui_port=None,
        db_file=str(here / "dev.db"),
        log_path=str(root / f"{mode}.log"),
        swaps=MODES[mode],
    )
    server.start()
    try:
        os.environ.update(ANTHROPIC_BASE_URL=fake.url, BLOB_STORE_DIR=str(here / "blobs"))
        settings = Settings.from_env()
        client = await connect(settings, target_host=server.address)
        starter = Starter(client, settings, mode)
        async with build_worker(client, settings):
            await (await starter.start("warm-up", 0)).result()  # the worker polls and has imported everything
            say(f"fairness {mode}: worker up; filling A's queue")
            stop = asyncio.Event()
            feeder = asyncio.create_task(starter.feed(arrivals, args.backlog, stop))
            settled = time.perf_counter() + 180  # until A's first workflow tasks are done: its runs wait for a slot
            while starter.started[A] < args.backlog or await starter.workflow_backlog() > args.wft_slots:
                if time.perf_counter() > settled:
                    break
                await asyncio.sleep(0.2)
            say(f"fairness {mode}: {starter.started[A]} of A's runs started, {arrivals.reached[A]} at the model")
            handles = await measure_b(starter, arrivals, args, outcome)
            say(f"fairness {mode}: B's waits {[None if w is None else round(w, 2) for w in outcome.waits]}")
            stop.set()
            await feeder
            outcome.a_started = starter.started[A]
            say(f"fairness {mode}: {starter.started[A]} of A's runs started, {starter.failed} starts failed")
            await where_b_waited(handles, outcome)
    finally:
        server.stop()
        fake.stop()
    return outcome


def pct(values: list[float | None] | list[float], q: float) -> float:
    """The q-quantile (nearest rank) of `values`; a run that never arrived counts as infinitely late."""
    ranked = sorted(float("inf") if v is None else v for v in values)
    return ranked[min(len(ranked) - 1, max(0, math.ceil(q * len(ranked)) - 1))] if ranked else float("nan")


def report(outcomes: list[Outcome], args: argparse.Namespace, elapsed: float) -> bool:
    """Print the table and the verdict; True when B's p95 with fairness meets the target."""
    print(
        f"customer A keeps {args.backlog} runs queued for their first model call; B starts {args.b_runs} runs "
        f"{args.interval:g} s apart.\nOne worker: {args.slots} activity and {args.wft_slots} workflow task slots; "
        f"the fake model answers after {args.delay:g} s; fairness weight 1.0 each.\n"
        f"Load average {args.load:.2f} at start, {os.getloadavg()[0]:.2f} now (2 cores); bench took {elapsed:.0f} s"
    )
    print(
        f"{'matching.enableFairness':<24}{'B runs':>7}  {'A queued at B start':<28}{'p50 s':>8}{'p95 s':>8}{'max s':>8}"
    )
    for o in outcomes:
        q = sorted(o.queued_at_start)
        queued = f"{q[0]}/{q[len(q) // 2]}/{q[-1]}" if q else "-"
        cells = "".join(f"{pct(o.waits, x):>8.2f}" for x in (0.5, 0.95, 1.0))
        print(f"{o.mode:<24}{len(o.waits):>7}  {queued + ' (min/med/max)':<28}{cells}")
        if None in o.waits:  # shown as inf above
            print(f"  {o.waits.count(None)} of B's runs had not reached the model after {args.patience:g} s")
        print(
            f"  B's median time queued: first workflow task {pct(o.wft_queue, 0.5):.2f} s, first call_llm "
            f"{pct(o.llm_queue, 0.5):.2f} s; A's runs started in all: {o.a_started}"
        )
    p95 = pct(outcomes[0].waits, 0.95)  # fairness on
    others = "".join(f" (without: {pct(o.waits, 0.95):.2f} s)" for o in outcomes if o.mode == "off")
    ok = p95 <= TARGET_S
    print(
        f"B's start -> first model call with A's {args.backlog} queued, p95: {p95:.2f} s with fairness{others} "
        f"(target <= {TARGET_S:g} s): {'PASS' if ok else 'FAIL'}"
    )
    return ok


async def main(args: argparse.Namespace) -> int:
    from bench.offline import offline_env

    started, args.load = time.perf_counter(), os.getloadavg()[0]
    root = Path(tempfile.mkdtemp(prefix="bench-fairness-"))
    (root / "limits.toml").write_text("[limits.default]\nfairness_weight = 1.0\n")  # weights only: no ledgers
    os.environ.update(offline_env("http://127.0.0.1:9", root))
    for var in ("LANGFUSE_PUBLIC_KEY", "AGENT_MODEL", "TEMPORAL_API_KEY", "TEMPORAL_NAMESPACE", "TEMPORAL_ADDRESS"):
        os.environ.pop(var, None)
    os.environ.update(
        SPEND_LIMITS=str(root / "limits.toml"),
        TEMPORAL_TASK_QUEUE="agents",
        WORKER_MAX_CONCURRENT_ACTIVITIES=str(args.slots),
        # Tasks wait at the server, where fairness orders them, not in the worker's slots (bench/README.md).
        WORKER_MAX_CONCURRENT_WORKFLOW_TASKS=str(args.wft_slots),
        # Every queued run stays cached: with 25, new runs evicted runs mid-task, burning the core (bench/README.md).
        WORKER_MAX_CACHED_WORKFLOWS=str(args.backlog + 2 * args.b_runs + 100),
        WORKER_GRACEFUL_SHUTDOWN_SECONDS="5",
        LLM_STREAMING="0",  # one response per call: no progress signals, less CPU on a 2-core host
        ARCHIVE_RUNS="0",
    )
    try:
        outcomes = [await run_mode(mode, args, root) for mode in args.modes]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0 if report(outcomes, args, time.perf_counter() - started) else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--backlog", type=int, default=500, help="A's runs kept queued (default 500)")
    parser.add_argument("--b-runs", type=int, default=20, help="B's runs measured per mode (default 20)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between B's starts (default 1)")
    parser.add_argument("--slots", type=int, default=10, help="the worker's activity slots (default 10)")
    parser.add_argument("--wft-slots", type=int, default=4, help="the worker's workflow task slots (default 4)")
    parser.add_argument("--delay", type=float, default=2.0, help="seconds the fake model takes per call (default 2)")
    parser.add_argument("--patience", type=float, default=240.0, help="longest wait for a B run, s (default 240)")
    parser.add_argument(
        "--modes",
        type=lambda v: v.split(","),
        default=["on", "off"],
        help=f"which, in order (default on,off; the first is the verdict's): {', '.join(MODES)}",
    )
    parser.add_argument("--quick", action="store_true", help="--backlog 100 --b-runs 8 --interval 0.5")
    args = parser.parse_args(argv)
    if args.quick:
        args.backlog, args.b_runs, args.interval = 100, 8, 0.5
    return args


if __name__ == "__main__":
    run_bench(main(parse_args()))
