"""What a spend limit adds to each model call, and how fast its ledger's history grows.

    .venv/bin/python bench/spend_limits.py            # --calls 200 --limits 2 --model-ms 0,800 (~1 min)

On a dev server this script starts (the product's dynamic config), with a worker polling the ledgers, two ways of
guarding a stand-in model call are timed in alternating rounds, side by side:

- `allowance`: the product's `SpendGuard.call` (activities/spend_guard.py), which admits calls from this worker's
  allowance in each ledger and reports in the background (activities/spend_lease.py);
- `round trips`: what it did before, and what the ledger still serves: a `reserve` update-with-start on each
  applicable ledger before the call, and a `settle` update on each after it.

The model answers after `--model-ms` (0: calls come back to back, the allowance's worst case, as reports cannot
keep up; 800: about a real model's time to answer). Reported per way and model time: median and p95 added latency
per call (wall time minus the model's), and the ledger history events per call. Not a pytest test; exit status 0
unless a call fails.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # runnable from anywhere: the repo root holds the packages
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.llm import LlmResponse
from models.run import Usage


async def main(args: argparse.Namespace) -> int:
    """Start a server and a worker, time `args.calls` guarded calls, print the figures."""
    from activities.spend_lease import release_all
    from config.settings import Settings
    from devstack.dev_server import free_port, start_dev_server
    from models.spend_limits import SpendLimits, ledger_id
    from service.connect import connect
    from worker import build_worker

    root = Path(tempfile.mkdtemp(prefix="bench-spend-"))
    os.environ.update(BLOB_STORE_DIR=str(root / "blobs"), TEMPORAL_TASK_QUEUE=f"bench-spend-{uuid.uuid4().hex[:6]}")
    settings = Settings.from_env()
    table = {"day": {"tokens": 10**12}} if args.limits == 1 else {"day": {"tokens": 10**12}, "month": {"usd": 10**6}}
    limits = SpendLimits.model_validate({"limits": {"default": table}})
    settings = dataclasses.replace(settings, spend_limits=limits)  # the worker runs the ledgers' own worker beside
    server = start_dev_server(port=free_port(), ui_port=None, db_file=str(root / "dev.db"))
    try:
        client = await connect(settings, target_host=server.address)
        guard = bench_guard(client, limits, settings.spend_ledger_task_queue)
        async with build_worker(client, settings):
            for model_ms in args.model_ms:
                figures: dict[str, list[float]] = {"allowance": [], "round trips": []}
                events: dict[str, list[float]] = {"allowance": [], "round trips": []}
                for round_ in range(args.rounds * 2):
                    way = ("allowance", "round trips")[round_ % 2]
                    scope = f"bench-{uuid.uuid4().hex[:8]}"  # a fresh ledger per round: its history is this round's
                    refs = limits.applicable(scope)
                    call = (
                        guarded(guard, model_ms)
                        if way == "allowance"
                        else round_trips(client, settings, refs, model_ms)
                    )
                    guard.customer = scope
                    calls = (args.calls if model_ms == 0 else args.slow_calls) // args.rounds
                    for n in range(calls + 5):
                        started = time.perf_counter()
                        await call(n)
                        if n >= 5:  # the first calls start the ledgers and warm the connection
                            figures[way].append(time.perf_counter() - started - model_ms / 1000)
                    await release_all()
                    history = await client.get_workflow_handle(ledger_id(refs[0], datetime.now(UTC))).describe()
                    events[way].append(history.raw_info.history_length / (calls + 5))
                print(
                    f"spend limits: {calls * args.rounds} sequential model calls per way, {args.limits} limit(s) each, model "
                    f"answers in {model_ms} ms, dev server on SQLite, {args.rounds} alternating rounds"
                )
                for way, samples in figures.items():
                    samples.sort()
                    print(
                        f"  {way:>11}: added latency per call median {statistics.median(samples) * 1000:6.2f} ms, "
                        f"p95 {samples[int(len(samples) * 0.95) - 1] * 1000:6.2f} ms; "
                        f"ledger history {statistics.mean(events[way]):.1f} events per call"
                    )
                ratio = statistics.median(figures["allowance"]) / statistics.median(figures["round trips"])
                print(f"  allowance / round trips, median: {ratio:.3f}x")
    finally:
        server.stop()
    return 0


def bench_guard(client: Any, limits: Any, task_queue: str) -> Any:
    """The product's SpendGuard, for a customer the bench names (outside an activity a call has none)."""
    from activities.spend_guard import SpendGuard

    class BenchGuard(SpendGuard):
        customer: str | None = None

        async def _customer(self) -> str | None:
            return self.customer

    return BenchGuard(client, limits, task_queue)


REPLY = LlmResponse(
    model="anthropic:claude-haiku-5-5", stop_reason="end_turn", usage=Usage(input_tokens=900, output_tokens=100)
)


def guarded(guard: Any, model_ms: int) -> Callable[[int], Awaitable[object]]:
    """One call through the product's guard."""

    async def model() -> LlmResponse:
        await asyncio.sleep(model_ms / 1000)
        return REPLY

    async def call(n: int) -> object:
        return await guard.call(model=REPLY.model, input_tokens=1000, max_output=1000, make=model)

    return call


def round_trips(client: Any, settings: Any, refs: list[Any], model_ms: int) -> Callable[[int], Awaitable[object]]:
    """One call guarded as before the allowances: reserve on each ledger (update-with-start), call, settle on each."""
    from temporalio.client import WithStartWorkflowOperation
    from temporalio.common import WorkflowIDConflictPolicy

    from models.pricing import cost_usd
    from models.spend_limits import (
        LedgerCarry,
        LedgerView,
        ReserveRequest,
        SettleRequest,
        ledger_id,
        period_end,
        period_of,
    )

    run = uuid.uuid4().hex[:8]

    async def one(ref: Any, request: Any) -> Any:
        now = datetime.now(UTC)
        start: Any = WithStartWorkflowOperation(
            "SpendLedgerWorkflow",
            LedgerCarry(
                scope=ref.scope,
                window=ref.window,
                period=period_of(ref.window, now),
                resets_at=period_end(ref.window, now),
            ),
            id=ledger_id(ref, now),
            task_queue=settings.spend_ledger_task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )
        return await client.execute_update_with_start_workflow(
            "reserve", request, start_workflow_operation=start, result_type=LedgerView
        )

    async def call(n: int) -> object:
        usd = cost_usd(REPLY.model, 1000, 1000)
        reserve = [
            ReserveRequest(key=f"{run}/{n}", tokens=2000, usd=usd, cap=ref.cap, hold_seconds=900) for ref in refs
        ]
        await asyncio.gather(*(one(ref, r) for ref, r in zip(refs, reserve, strict=True)))
        await asyncio.sleep(model_ms / 1000)
        settle = SettleRequest(key=f"{run}/{n}", tokens=1000, usd=cost_usd(REPLY.model, 900, 100))
        now = datetime.now(UTC)
        return await asyncio.gather(
            *(
                client.get_workflow_handle(ledger_id(ref, now)).execute_update("settle", settle, result_type=LedgerView)
                for ref in refs
            )
        )

    return call


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200, help="calls per way and model time")
    parser.add_argument("--slow-calls", type=int, default=40, help="calls per way when the model takes time")
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds per way")
    parser.add_argument("--model-ms", type=lambda v: [int(x) for x in v.split(",")], default=[0, 800])
    parser.add_argument("--limits", type=int, default=2, choices=(1, 2))
    code = asyncio.run(main(parser.parse_args()))
    sys.stdout.flush()
    os._exit(code)
