"""Where the worker's Python time goes per product loop step: cProfile over every thread of an in-process worker.

    .venv/bin/python bench/step_profile.py                 # 20 steps x 5 runs on the product worker
    .venv/bin/python bench/step_profile.py --top 40 --save /tmp/step.prof

The same setup as bench/step_overhead.py's product variant (devstack dev server, FakeAnthropic, the worker
`worker.build_worker` builds). Every thread is profiled (the asyncio thread runs the SDK's activation and
payload code and the activities; the workflow threads run the sandboxed workflow code), and the totals are
cut into buckets (payload conversion, codec, the sandbox's serialization-context lookups, pydantic, the
workflow's own code) in ms of profiled CPU per loop step. cProfile inflates every figure (roughly 2x), so
compare buckets and before/after, not absolute times. See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import os
import pstats
import shutil
import sys
import tempfile
import threading
import uuid
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.step_overhead import (
    Variant,
    bench_responder,
    build_variant_worker,
    fake_model_class,
    product_client,
    start_server,
    temporal_run,
)

BUCKETS = (
    ("sandbox serialization-context lookups", ("get_serialization_context", "_get_current_dc")),
    ("payload codec (payloads/codec.py)", ("payloads/codec.py",)),
    ("payload conversion (temporalio/converter.py)", ("temporalio/converter.py",)),
    ("payload visitor walks (bridge/_visitor.py)", ("_visitor.py",)),
    ("pydantic validate/dump (pydantic, pydantic_core)", ("pydantic/main.py", "pydantic_core", "type_adapter")),
    ("workflow code (workflows/)", ("/workflows/",)),
    ("activities (activities/)", ("/activities/",)),
)
"""Cumulative time of the outermost call into each bucket (nested calls are not counted twice within one)."""


def profiled_threads(profiles: list[cProfile.Profile]) -> None:
    """Every thread started from now on gets its own profiler (cProfile is per thread)."""

    def bootstrap(*_: object) -> None:
        profile = cProfile.Profile()
        profiles.append(profile)
        profile.enable()

    threading.setprofile(bootstrap)


def bucket_ms(stats: pstats.Stats, steps: int) -> dict[str, float]:
    """ms per step of the outermost frames in each bucket: a function counts when no caller is in the bucket."""
    table = stats.stats  # type: ignore[attr-defined]
    out: dict[str, float] = {}
    for label, needles in BUCKETS:

        def inside(key, needles=needles) -> bool:
            file, _, name = key
            return any(n in file or n == name for n in needles)

        total = 0.0
        for key, (_, _, _, cumulative, callers) in table.items():
            if inside(key) and not any(inside(c) for c in callers):
                total += cumulative
        out[label] = 1000 * total / steps
    return out


async def profile_runs(args: argparse.Namespace, root: Path) -> tuple[pstats.Stats, int]:
    from config.settings import Settings

    server = start_server(root, "fast", fast_config=True, in_memory=False)
    profiles: list[cProfile.Profile] = []
    try:
        await server.wait_serving()
        client = await product_client(server.address)
        settings = Settings.from_env({**os.environ, "TEMPORAL_TASK_QUEUE": f"profile-{uuid.uuid4().hex[:6]}"})
        profiled_threads(profiles)
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(build_variant_worker(client, settings, Variant("product", "product")))
            for _ in range(2):
                await temporal_run(client, settings.task_queue, "AgentLoopWorkflow", 3, server.process.pid, False)
            main = cProfile.Profile()
            for p in profiles:
                p.disable()
            profiles.clear()
            main.enable()
            for _ in range(args.runs):
                await temporal_run(client, settings.task_queue, "AgentLoopWorkflow", args.steps, server.process.pid)
            main.disable()
            for p in profiles:
                p.disable()
        threading.setprofile(None)  # type: ignore[arg-type]
    finally:
        server.stop()
    stats = pstats.Stats(main)
    for p in profiles:
        with contextlib.suppress(TypeError):  # a thread's profiler that saw no calls
            stats.add(p)
    return stats, args.steps * args.runs


async def main(args: argparse.Namespace) -> int:
    root = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    fake = fake_model_class(False)(responder=bench_responder).start()
    os.environ.update(
        {
            "ANTHROPIC_BASE_URL": fake.url,
            "ANTHROPIC_API_KEY": "bench-key-not-real",
            "NOTES_DB": str(root / "notes.db"),
            "NOTIFY_OUTBOX": str(root / "outbox.jsonl"),
        }
    )
    for var in ("LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY", "LANGFUSE_HOST", "LANGFUSE_BASE_URL", "AGENT_MODEL"):
        os.environ.pop(var, None)
    try:
        stats, steps = await profile_runs(args, root)
    finally:
        fake.stop()
        shutil.rmtree(root, ignore_errors=True)
    print(f"profiled CPU, ms per loop step ({steps} steps; cProfile overhead included)")
    for label, ms in bucket_ms(stats, steps).items():
        print(f"  {label:<52}{ms:>8.2f}")
    total = sum(row[2] for row in stats.stats.values())  # type: ignore[attr-defined]
    print(f"  {'all profiled Python (tottime)':<52}{1000 * total / steps:>8.2f}")
    if args.save:
        stats.dump_stats(args.save)
    stats.sort_stats("tottime").print_stats(args.top)
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--top", type=int, default=30, help="functions to list by own time")
    parser.add_argument("--save", help="write the merged profile here (pstats format)")
    return parser.parse_args(argv)


if __name__ == "__main__":
    code = asyncio.run(main(parse_args()))
    sys.stdout.flush()
    os._exit(code)
