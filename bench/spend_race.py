"""Fifty concurrent runs of one customer against a cap of about twenty runs' worth (issue 34): what they spend, and
what the spend limit adds to each model call while they race for the last of it.

    .venv/bin/python bench/spend_race.py              # --runs 50 --cap-runs 20 --rounds 3 (~1-2 min)

One dev server (the product's), one worker (`worker.build_worker`, which runs the ledgers' own worker beside it),
and `devstack.fake_anthropic.FakeAnthropic` on 127.0.0.1, whose replies use three quarters of each call's output
allowance after `--delay` s, so a reservation (input estimate + allowance) is near what a call spends. It records
what it served, call by call: the provider's bill. One probe run with no cap measures a run's spend; the cap is
`--cap-runs` times that. Then `--runs` runs of one customer start at once, each round on a fresh customer (a fresh
ledger). Reported per round: cap, what the ledger counted, what the provider billed, runs completed and stopped;
and over all rounds the time each model call waited for its reservation (the `SpendGuard.reserve` it made before
its call: an allowance check, or a report's round trip when the allowance must grow). Exit status 0 when no round
spent past its cap, else 1.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # runnable from anywhere: the repo root holds the packages
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.entry import run_bench
from bench.offline import offline_env
from devstack.fake_anthropic import FakeAnthropic, Reply, estimate_tokens

BUDGET = {"max_tokens": 2000}


class Bill:
    """The fake model's responder: replies after `delay` s using 3/4 of the allowance, and adds up what it served."""

    def __init__(self, delay: float) -> None:
        self.delay, self.lock, self.served = delay, threading.Lock(), 0

    def respond(self, body: dict[str, Any]) -> Reply:
        output = body["max_tokens"] * 3 // 4
        with self.lock:
            self.served += estimate_tokens(body["messages"]) + output
        return Reply(text="ok", delay=self.delay, output_tokens=output)


def timed_reserves(waits: list[float], lookups: list[float]) -> None:
    """Record how long each model call's reservation took, and the customer lookup within it (a run's first call
    on a worker describes the run once): instrumentation of this process only."""
    from activities.spend_guard import SpendGuard

    reserve, customer = SpendGuard.reserve, SpendGuard._customer

    async def timed(self: SpendGuard, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await reserve(self, **kwargs)
        finally:
            waits.append(time.perf_counter() - started)

    async def timed_lookup(self: SpendGuard) -> Any:
        started = time.perf_counter()
        try:
            return await customer(self)
        finally:
            lookups.append(time.perf_counter() - started)

    SpendGuard.reserve = timed  # type: ignore[method-assign]
    SpendGuard._customer = timed_lookup  # type: ignore[method-assign]


async def main(args: argparse.Namespace) -> int:
    from activities.spend_lease import release_all
    from config.settings import Settings
    from devstack.dev_server import free_port, start_dev_server
    from models.spend_limits import LedgerView, SpendLimits, ledger_id
    from service.connect import connect
    from worker import build_worker

    root = Path(tempfile.mkdtemp(prefix="bench-spend-race-"))
    bill = Bill(args.delay)
    fake = FakeAnthropic(responder=bill.respond).start()
    os.environ.update(offline_env(fake.url, root))
    os.environ.update(TEMPORAL_TASK_QUEUE=f"bench-race-{uuid.uuid4().hex[:6]}", ARCHIVE_RUNS="0")
    for var in ("LANGFUSE_PUBLIC_KEY", "TEMPORAL_API_KEY", "TEMPORAL_NAMESPACE", "TEMPORAL_ADDRESS", "SPEND_LIMITS"):
        os.environ.pop(var, None)
    server = start_dev_server(port=free_port(), ui_port=None, db_file=str(root / "dev.db"))
    waits: list[float] = []
    lookups: list[float] = []
    failed = False
    try:
        base = Settings.from_env()
        client = await connect(base, target_host=server.address)

        async def run(settings: Any, customer: str | None) -> dict[str, Any]:
            result: dict[str, Any] = await client.execute_workflow(
                "AgentLoopWorkflow",
                {"prompt": "race", "budget": BUDGET, **({"customer_id": customer} if customer else {})},
                id=f"bench-race-{uuid.uuid4().hex[:10]}",
                task_queue=settings.task_queue,
            )
            return result

        async with build_worker(client, base):
            served = bill.served
            probe = await run(base, None)
            one = bill.served - served
        usage = probe["usage"]
        print(
            f"spend race: {args.runs} runs of one customer at once, cap {args.cap_runs} runs' worth; one run spends "
            f"{one} tokens ({usage['input_tokens']} in, {usage['output_tokens']} out, {usage['llm_calls']} calls); "
            f"model answers after {args.delay:g} s; dev server on SQLite"
        )
        cap = args.cap_runs * one
        timed_reserves(waits, lookups)
        for round_ in range(args.rounds):
            customer = f"race-{uuid.uuid4().hex[:8]}"
            limits = SpendLimits.model_validate({"limits": {customer: {"day": {"tokens": cap}}}})
            settings = dataclasses.replace(base, spend_limits=limits)
            served = bill.served
            started = time.perf_counter()
            async with build_worker(client, settings):
                results = await asyncio.gather(*(run(settings, customer) for _ in range(args.runs)))
                took = time.perf_counter() - started
                await release_all()
                [ref] = limits.applicable(customer)
                handle = client.get_workflow_handle(ledger_id(ref, datetime.now(UTC)))
                view = await handle.query("state", result_type=LedgerView)
                events = (await handle.describe()).raw_info.history_length
            billed = bill.served - served
            statuses = [r["status"] for r in results]
            calls = sum(r["usage"]["llm_calls"] for r in results)
            over = view.spent_tokens > cap or billed > cap
            failed |= over
            print(
                f"  round {round_ + 1}: cap {cap}, ledger spent {view.spent_tokens} ({view.spent_tokens / cap:.3f}x), "
                f"provider billed {billed} ({billed / cap:.3f}x); {statuses.count('completed')} completed, "
                f"{statuses.count('budget_exceeded')} stopped at the limit; {calls} calls; {took:.1f} s; "
                f"ledger {events} events ({events / max(calls, 1):.1f} per call): {'OVER THE CAP' if over else 'ok'}"
            )
        for name, samples in (("reservation wait", waits), ("  of which the customer lookup", lookups)):
            samples.sort()
            print(
                f"  {name} per model call, all rounds ({len(samples)} calls): median "
                f"{statistics.median(samples) * 1000:.2f} ms, p95 {samples[int(len(samples) * 0.95) - 1] * 1000:.2f} "
                f"ms, max {samples[-1] * 1000:.1f} ms"
            )
        print(f"spent past the cap in any round: {'YES (FAIL)' if failed else 'no (PASS)'}")
    finally:
        server.stop()
        fake.stop()
        shutil.rmtree(root, ignore_errors=True)
    return 1 if failed else 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50, help="runs of one customer started at once (default 50)")
    parser.add_argument("--cap-runs", type=int, default=20, help="the cap, in runs' worth of spend (default 20)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each on a fresh customer (default 3)")
    parser.add_argument("--delay", type=float, default=0.8, help="seconds the fake model takes per call (default 0.8)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    run_bench(main(parse_args()))
