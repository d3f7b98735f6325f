"""One round of bench/scale.py: N runs started at once on one framework's worker, then measured from histories."""

from __future__ import annotations

import asyncio
import statistics
import uuid
from dataclasses import dataclass
from typing import Any

from bench.scale_fake import FINAL_TEXT
from bench.scale_procs import FakeModel, RssSampler, cpu_s, now

PROMPT = "Call the calculator once with 0 + 1, then answer. [run {tag}]"
BUDGET = {"max_steps": 20, "max_tokens": 100_000_000, "max_cost_usd": 1_000_000.0, "max_seconds": 3600}
START_CONCURRENCY = 50
"""start_workflow RPCs in flight at once (the runs start within a second or so even at N = 1,000)."""
ROUND_TIMEOUT_S = 1200.0


@dataclass
class Target:
    """A framework's worker as the bench drives it."""

    framework: str
    pid: int
    task_queue: str
    workflow: str
    client: Any
    idle_rss_mib: float = 0.0

    @property
    def product(self) -> bool:
        return self.framework.startswith("product")


@dataclass
class RunFacts:
    """One run, from its history (server clock) and the fake's log of its model calls (same machine clock)."""

    start: float
    close: float
    steps: int
    events: int
    signals: int
    model_s: float
    overheads: list[float]
    retried_calls: int = 0
    """Model calls asked again: attempts beyond one per turn."""

    @property
    def run_s(self) -> float:
        return self.close - self.start


async def start_run(target: Target, tag: str):
    prompt = PROMPT.format(tag=tag)
    if target.product:
        payload = {"prompt": prompt, "budget": BUDGET}
        return await target.client.start_workflow(target.workflow, payload, id=tag, task_queue=target.task_queue)
    return await target.client.start_workflow(target.workflow, args=[prompt, 6], id=tag, task_queue=target.task_queue)


def check_result(target: Target, tag: str, result: Any) -> None:
    """Every run must have done what the fake asked: two model calls, one calculator call, the answer."""
    if target.product:
        usage = result["usage"]  # llm_calls counts attempts: a retried model call makes it 3
        ok = result["status"] == "completed" and usage["llm_calls"] >= 2 and usage["tool_calls"] == 1
        ok = ok and str(result["output"]).startswith(FINAL_TEXT)
    else:
        ok = str(result).startswith(FINAL_TEXT)
    if not ok:
        raise RuntimeError(f"{target.framework} run {tag} did not finish as scripted: {str(result)[:300]}")


def seconds(timestamp: Any) -> float:
    return float(timestamp.seconds) + timestamp.nanos / 1e9


def run_facts(events: list[Any], calls: list[tuple[int, float, float]]) -> RunFacts:
    """Step overheads: the gaps around the model calls, one per step (model call, tool call, model call).

    A step runs from one boundary to the next; the boundaries are the run's start, the end of each model call
    but the last, the start of the last, and the run's close. So each step's wall time minus the model's own
    time in it is one gap: start -> first call, first call's end -> last call's start (the tool step), last
    call's end -> close. Their sum is the run's time minus its model time. A call retried (its attempt timed
    out or failed) counts by its last attempt; the earlier attempts' time is overhead, and they are counted.
    """
    from temporalio.api.enums.v1 import EventType as E

    start, close = seconds(events[0].event_time), seconds(events[-1].event_time)
    last = {turn: (begin, end) for turn, begin, end in calls}  # in start order: the last attempt wins
    if not last:
        raise RuntimeError("a run with no model call in the fake's log")
    spans = [last[turn] for turn in sorted(last)]
    gaps = [spans[0][0] - start]
    gaps += [later[0] - earlier[1] for earlier, later in zip(spans, spans[1:], strict=False)]
    gaps.append(close - spans[-1][1])
    return RunFacts(
        start=start,
        close=close,
        steps=len(gaps),
        events=len(events),
        signals=sum(e.event_type == E.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED for e in events),
        model_s=sum(end - begin for begin, end in spans),
        overheads=gaps,
        retried_calls=len(calls) - len(spans),
    )


async def histories(handles: list[Any]) -> list[list[Any]]:
    gate = asyncio.Semaphore(20)

    async def one(handle: Any) -> list[Any]:
        async with gate:
            return [e async for e in handle.fetch_history_events()]

    return await asyncio.gather(*(one(h) for h in handles))


async def run_round(target: Target, n: int, server_pid: int, fake: FakeModel, label: str) -> dict[str, Any]:
    """N runs at once; CPU of the worker and the server and the worker's peak RSS while they run."""
    tags = [f"scale-{label}-{i:04d}-{uuid.uuid4().hex[:6]}" for i in range(n)]
    gate = asyncio.Semaphore(START_CONCURRENCY)

    async def one(tag: str):
        async with gate:
            handle = await start_run(target, tag)
        check_result(target, tag, await handle.result())
        return handle

    worker_cpu, server_cpu, began = cpu_s(target.pid), cpu_s(server_pid), now()
    with RssSampler(target.pid) as rss:
        handles = await asyncio.wait_for(asyncio.gather(*(one(t) for t in tags)), ROUND_TIMEOUT_S)
    worker_cpu, server_cpu = cpu_s(target.pid) - worker_cpu, cpu_s(server_pid) - server_cpu
    wall = now() - began
    calls = fake.calls()
    runs = [run_facts(events, calls.get(tag, [])) for tag, events in zip(tags, await histories(handles), strict=True)]
    return summarize(runs, n, wall, worker_cpu, server_cpu, rss.peak_mib - target.idle_rss_mib)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summarize(
    runs: list[RunFacts], n: int, wall: float, worker_cpu: float, server_cpu: float, rss_mib: float
) -> dict[str, Any]:
    """A round's figures (see bench/scale.py's table)."""
    steps = sum(r.steps for r in runs)
    overheads = [gap for r in runs for gap in r.overheads]
    run_times = [r.run_s for r in runs]
    median_run = statistics.median(run_times)
    return {
        "n": n,
        "wall_s": wall,
        "steps_per_s": steps / (max(r.close for r in runs) - min(r.start for r in runs)),
        "overhead_p50_ms": 1000 * percentile(overheads, 0.50),
        "overhead_p99_ms": 1000 * percentile(overheads, 0.99),
        "worker_cpu_ms": 1000 * worker_cpu / steps,
        "server_cpu_ms": 1000 * server_cpu / steps,
        "rss_kib_per_run": 1024 * rss_mib / n,
        "events_per_step": sum(r.events for r in runs) / steps,
        "signals_per_step": sum(r.signals for r in runs) / steps,
        "run_p50_s": median_run,
        "run_max_over_p50": max(run_times) / median_run,
        "model_s_per_run": statistics.median(r.model_s for r in runs),
        "retried_calls_per_run": sum(r.retried_calls for r in runs) / n,
    }
