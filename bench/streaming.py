"""Token streaming: delay from a delta leaving the fake model to a follower receiving it, and what streaming
costs in history per step (LLM_STREAMING on against off), measured side by side in one run. With
`--first-events`: how soon `python -m progress follow` shows a run's first events (bench/first_events.py), for
this checkout and, with `--before PATH`, another one side by side (ratios).

    .venv/bin/python bench/streaming.py                 # 3 rounds of 5-step runs (~1.5 min)
    .venv/bin/python bench/streaming.py --rounds 5 --steps 8 --words 60 --chunk-delay 0.02
    git archive <commit> | tar -x -C /tmp/before        # the code to compare with
    .venv/bin/python bench/streaming.py --first-events --before /tmp/before --rounds 5

Starts its own headless dev server (127.0.0.1, free ports, SQLite in a temporary directory), a fake Anthropic
server and in-process workers (one per variant), and stops all of them. Each round runs every variant once:

- `off`: LLM_STREAMING=0, no follower (the floor)
- `off+follower`: LLM_STREAMING=0, a follower reading the run's progress stream live (progress.reader)
- `on+follower`: LLM_STREAMING=1 (the default), the same follower

The fake stamps every streamed word with the wall clock at the moment it writes that word's SSE chunk; the
follower subtracts it from the time it receives the `llm_delta` event holding the word. Unstreamed replies
carry words of the same length, so history differences are the stream's own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.entry import run_bench
from bench.offline import offline_env
from devstack.dev_server import free_port, start_dev_server
from devstack.fake_anthropic import FakeAnthropic, Reply

STAMP = "@{:017.6f}"
"""A word of a streamed reply: the time it left the fake; unstreamed replies use the same width."""


class StampedEvents(list):  # type: ignore[type-arg]
    """A streamed reply whose text deltas are stamped as the fake's handler iterates (just before each write)."""

    def __iter__(self) -> Iterator[Any]:
        for name, data in super().__iter__():
            delta = data.get("delta", {}) if name == "content_block_delta" else {}
            if delta.get("type") == "text_delta":
                lead = " " if delta["text"].startswith(" ") else ""
                data = {**data, "delta": {**delta, "text": lead + STAMP.format(time.time())}}
            yield name, data


class StampingFake(FakeAnthropic):
    """FakeAnthropic whose streamed words carry the time they were sent."""

    def stream_events(self, api: str, body: dict[str, Any], reply: Reply) -> list[tuple[str, dict[str, Any]]]:
        return StampedEvents(super().stream_events(api, body, reply))


def responder_for(steps: int, words: int, chunk_delay: float):
    """`steps` replies that each say `words` words and ask for the calculator, then a last one that only talks."""
    text = " ".join([STAMP.format(0)] * words)

    def respond(body: dict[str, Any]) -> Reply:
        done = sum(1 for m in body["messages"] if m["role"] == "assistant")
        calls = [("calculator", {"expression": f"{done} + 1"})] if done < steps else []
        return Reply(text=text, tool_calls=calls, chunk_delay=chunk_delay)

    return respond


@dataclasses.dataclass
class RunFigures:
    """One run: its steps, its history, and each streamed word's delay (seconds) and each batch's."""

    steps: int
    events: int
    bytes: int
    word_delays: list[float]
    batch_delays: list[float]


async def one_run(client: Any, queue: str, follow: bool) -> RunFigures:
    from progress.reader import follow_events

    handle = await client.start_workflow(
        "AgentLoopWorkflow",
        {"prompt": "add up", "budget": {"max_steps": 100}},
        id=f"bench-stream-{uuid.uuid4().hex[:8]}",
        task_queue=queue,
    )
    words: list[float] = []
    batches: list[float] = []

    async def follower() -> None:
        async for event in follow_events(client, handle.id):
            now = time.time()
            if event["type"] != "llm_delta":
                continue
            stamps = [float(w[1:]) for w in event["text"].split()]
            words.extend(now - s for s in stamps)
            batches.append(now - max(stamps))

    task = asyncio.create_task(follower()) if follow else None
    result = await asyncio.wait_for(handle.result(), 300)
    if task is not None:
        await asyncio.wait_for(task, 60)
    assert result["status"] == "completed", result
    history = await handle.fetch_history()
    size = sum(e.ByteSize() for e in history.events)
    return RunFigures(result["steps"], len(history.events), size, words, batches)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(args: argparse.Namespace, root: Path) -> dict[str, list[RunFigures]]:
    from config.settings import Settings
    from service.connect import connect
    from worker import build_worker

    server = start_dev_server(port=free_port(), ui_port=None, db_file=str(root / "dev.db"))
    try:
        await server.wait_serving()
        base = Settings.from_env()
        client = await connect(base, target_host=server.address)
        variants = {"off": (False, False), "off+follower": (False, True), "on+follower": (True, True)}
        queues = {name: f"bench-stream-{name}-{uuid.uuid4().hex[:6]}" for name in variants}
        results: dict[str, list[RunFigures]] = {name: [] for name in variants}
        async with contextlib.AsyncExitStack() as workers:
            for name, (streaming, _) in variants.items():
                settings = dataclasses.replace(base, task_queue=queues[name], llm_streaming=streaming)
                await workers.enter_async_context(build_worker(client, settings))
            for round_ in range(args.rounds):
                for name, (_, follow) in variants.items():
                    figures = await one_run(client, queues[name], follow)
                    results[name].append(figures)
                    print(
                        f"round {round_ + 1} {name:13s} steps {figures.steps} events {figures.events} "
                        f"bytes {figures.bytes} deltas {len(figures.batch_delays)}",
                        flush=True,
                    )
    finally:
        server.stop()
    return results


def report(results: dict[str, list[RunFigures]], args: argparse.Namespace, load: tuple[float, ...]) -> None:
    print(
        f"\n{args.rounds} rounds; each run {args.steps} tool steps + 1 answer, {args.words} words a reply "
        f"streamed {args.chunk_delay * 1000:.0f} ms apart; load average at start {load[0]:.2f}, now "
        f"{os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)"
    )
    print(f"{'variant':14s} {'events/step':>12s} {'bytes/step':>11s}")
    per_step = {}
    for name, runs in results.items():
        events = statistics.median(r.events / r.steps for r in runs)
        size = statistics.median(r.bytes / r.steps for r in runs)
        per_step[name] = (events, size)
        print(f"{name:14s} {events:12.1f} {size:11.0f}")
    on, off = per_step["on+follower"], per_step["off+follower"]
    floor = per_step["off"]
    print(f"streaming on vs off (both followed): +{on[0] - off[0]:.1f} events/step, +{on[1] - off[1]:.0f} bytes/step")
    print(
        f"a live follower, streaming off vs none: +{off[0] - floor[0]:.1f} events/step, +{off[1] - floor[1]:.0f} bytes/step"
    )
    words = [d for r in results["on+follower"] for d in r.word_delays]
    batches = [d for r in results["on+follower"] for d in r.batch_delays]
    print(
        f"delta delay, per word ({len(words)}): median {statistics.median(words) * 1000:.0f} ms, "
        f"p95 {pct(words, 0.95) * 1000:.0f} ms, max {max(words) * 1000:.0f} ms"
    )
    print(
        f"delta delay, newest word of each batch ({len(batches)} batches): median "
        f"{statistics.median(batches) * 1000:.0f} ms, p95 {pct(batches, 0.95) * 1000:.0f} ms"
    )


async def first_events(args: argparse.Namespace) -> int:
    """The `--first-events` mode: one dev server and fake model, a worker and followers per checkout."""
    from bench.first_events import main_env, measure
    from bench.first_events import report as report_first
    from devstack.scripted_model import respond

    load = os.getloadavg()
    root = Path(tempfile.mkdtemp(prefix="bench-first-"))
    fake = FakeAnthropic(responder=lambda body: dataclasses.replace(respond(body), chunk_delay=args.chunk_delay))
    fake.start()
    server = start_dev_server(port=free_port(), ui_port=None, db_file=str(root / "dev.db"))
    try:
        await server.wait_serving()
        env = main_env(root, server.address, fake.url)
        os.environ.update(env)
        from config.settings import Settings
        from service.connect import connect

        client = await connect(Settings.from_env(), target_host=server.address)
        checkouts = {"after": Path(__file__).resolve().parents[1]}
        if args.before:
            checkouts = {"before": Path(args.before).resolve(), **checkouts}
        results = await measure(client, env, checkouts, args.rounds, args.lead, root)
    finally:
        server.stop()
        fake.stop()
        shutil.rmtree(root, ignore_errors=True)
    print(
        f"\n{args.rounds} rounds of hybrid runs (scripted model, words {args.chunk_delay * 1000:.0f} ms apart); "
        f"`waiting` followers launched {args.lead:.1f} s before the run; load average at start {load[0]:.2f}, "
        f"now {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)"
    )
    report_first(results)
    return 0


async def main(args: argparse.Namespace) -> int:
    if args.first_events:
        return await first_events(args)
    load = os.getloadavg()
    root = Path(tempfile.mkdtemp(prefix="bench-streaming-"))
    fake = StampingFake(responder=responder_for(args.steps, args.words, args.chunk_delay)).start()
    os.environ.update(offline_env(fake.url, root))
    for var in ("LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY", "AGENT_MODEL", "TEMPORAL_API_KEY", "TEMPORAL_NAMESPACE"):
        os.environ.pop(var, None)
    try:
        results = await measure(args, root)
    finally:
        fake.stop()
        shutil.rmtree(root, ignore_errors=True)
    report(results, args, load)
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="runs of each variant, side by side (default 3)")
    parser.add_argument("--steps", type=int, default=5, help="tool steps per run, then one answer (default 5)")
    parser.add_argument("--words", type=int, default=40, help="words per reply (default 40)")
    parser.add_argument("--chunk-delay", type=float, default=0.03, help="seconds between streamed words (0.03)")
    parser.add_argument("--first-events", action="store_true", help="measure `progress follow` (bench/first_events.py)")
    parser.add_argument("--before", help="with --first-events: a checkout to compare with (e.g. from git archive)")
    parser.add_argument("--lead", type=float, default=2.0, help="with --first-events: the `waiting` follower's lead")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.steps < 1 or args.words < 1 or args.chunk_delay < 0:
        parser.error("--rounds, --steps, --words must be at least 1 and --chunk-delay not negative")
    return args


if __name__ == "__main__":
    run_bench(main(parse_args()))
