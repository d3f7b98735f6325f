"""What a spend limit adds to each model call, and how fast its ledger's history grows.

    .venv/bin/python bench/spend_limits.py            # --calls 200 --limits 2 (~30 s)

On a dev server this script starts (the product's dynamic config), with a worker polling the ledgers, one
`SpendGuard.call` (activities/spend_guard.py) wraps a zero-latency stand-in for a model: the time per call is the
reserve (update-with-start on each applicable ledger, in parallel) plus the settle (an update on each). Reported:
median and p95 added latency per call, and the ledger's history events per call (it continues as new past
workflows/spend_ledger.py MAX_EVENTS). Not a pytest test; exit status 0 unless a call fails.
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
from pathlib import Path

if __name__ == "__main__":  # runnable from anywhere: the repo root holds the packages
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from models.llm import LlmResponse
from models.run import Usage


async def main(args: argparse.Namespace) -> int:
    """Start a server and a worker, time `args.calls` guarded calls, print the figures."""
    from activities.spend_guard import SpendGuard
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
        guard = SpendGuard(client, limits, settings.spend_ledger_task_queue)
        reply = LlmResponse(
            model="anthropic:claude-haiku-5-5", stop_reason="end_turn", usage=Usage(input_tokens=900, output_tokens=100)
        )

        async def model() -> LlmResponse:
            return reply

        async with build_worker(client, settings):
            samples = []
            for n in range(args.calls + 10):
                started = time.perf_counter()
                await guard.call(model="anthropic:claude-haiku-5-5", input_tokens=1000, max_output=1000, make=model)
                if n >= 10:  # the first calls start the ledgers and warm the connection
                    samples.append(time.perf_counter() - started)
            ref = limits.applicable(None)[0]
            from datetime import UTC, datetime

            handle = client.get_workflow_handle(ledger_id(ref, datetime.now(UTC)))
            description = await handle.describe()
            events = description.raw_info.history_length
        samples.sort()
        print(f"spend limits: {args.calls} sequential model calls, {args.limits} limit(s) each, dev server on SQLite")
        print(
            f"  added latency per call: median {statistics.median(samples) * 1000:.2f} ms, "
            f"p95 {samples[int(len(samples) * 0.95) - 1] * 1000:.2f} ms"
        )
        print(
            f"  ledger history: {events} events in its current run after {args.calls + 10} calls "
            f"({events / (args.calls + 10):.1f} per call; continues as new past 4000)"
        )
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--limits", type=int, default=2, choices=(1, 2))
    code = asyncio.run(main(parser.parse_args()))
    sys.stdout.flush()
    os._exit(code)
