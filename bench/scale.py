"""N concurrent agent runs on one worker process: throughput, step overhead, CPU, memory, history (issue 35).

    .venv/bin/python bench/scale.py                 # N = 10, 100 (3 rounds, peers too), 1,000 (product, 1 round)
    .venv/bin/python bench/scale.py --quick         # N = 10, 100, one round each
    .venv/bin/python bench/scale.py --n 100 --rounds 2 --variant tuned:WORKER_MAX_CACHED_WORKFLOWS=1000

One dev server (devstack's settings), one fake model process (bench/scale_fake.py: about 0.8 s to the first
token with jitter, then 40 tokens/s, streamed when asked), and one worker process per framework: the product's
`worker.py` with the shipped settings (streaming on), and the peers' workers (bench/peer_runner.py --serve in
bench/.venv-peers, as bench/peers.py pins them). Each run is two model calls and one calculator call. A round
starts N runs at once on one framework and waits for all; rounds rotate the frameworks so a shared machine's
drift hits all alike. Not a pytest test. Exit status 0 when every measured target passes. See bench/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # runnable from anywhere: the repo root holds the packages
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.entry import run_bench
from bench.peers import PEERS, ensure_peers_venv
from bench.scale_procs import FakeModel, PeerWorker, ProductWorker, PySpy, load_average
from bench.scale_report import table, verdict
from bench.scale_runs import Target, run_round
from bench.step_overhead import product_client, start_server
from bench.waiting import settled_rss

WARMUP_RUNS = 3
"""Untimed runs per worker before its idle RSS is read (imports, sandbox, first workflow)."""


def environment(root: Path, fake: FakeModel) -> None:
    """What the peers' workers and the product's client read: the fake's URLs, keys, the blob store."""
    os.environ.update(
        {
            "ANTHROPIC_BASE_URL": fake.urls["anthropic"],
            "ANTHROPIC_API_KEY": "bench-key-not-real",
            "OPENAI_BASE_URL": fake.urls["openai"],
            "OPENAI_API_KEY": "bench-key-not-real",
            "OPENAI_AGENTS_DISABLE_TRACING": "1",
            "BLOB_STORE_DIR": str(root / "blobs"),
        }
    )
    for var in ("LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY", "LANGFUSE_HOST", "LANGFUSE_BASE_URL", "AGENT_MODEL"):
        os.environ.pop(var, None)


async def start_targets(args, root: Path, address: str, fake: FakeModel, stack) -> list[Target]:
    """The product's worker (and each --variant's), then the peers' workers, each in its own process."""
    from temporalio.client import Client

    client, plain = await product_client(address), await Client.connect(address)
    targets = []
    products: list[tuple[str, dict[str, str], Path | None]] = [("product", {}, None)]
    products += [(name, extra, None) for name, extra in args.variant]
    products += [("product-before", {}, args.before)] if args.before else []
    for name, extra, code in products:
        queue = f"scale-{name}-{uuid.uuid4().hex[:6]}"
        worker = ProductWorker(root, address, fake.urls["anthropic"], queue, extra, code)
        stack.push_async_callback(worker.stop)
        await worker.start()
        targets.append(Target(name, worker.pid, worker.task_queue, "AgentLoopWorkflow", client))
    if args.peers:
        python = ensure_peers_venv(print)
        for framework in args.peers:
            peer = PeerWorker(python, framework, address, root / "logs")
            stack.push_async_callback(peer.stop)
            await peer.start()
            targets.append(Target(framework, peer.pid, peer.task_queue, peer.workflow, plain))
    return targets


async def measure(args, root: Path, fake: FakeModel) -> dict[tuple[str, int], list[dict[str, Any]]]:
    """Servers and workers up, warm-up, then for each N: rounds of every framework in rotating order."""
    results: dict[tuple[str, int], list[dict[str, Any]]] = {}
    server = start_server(root, "fast", fast_config=True, in_memory=False)
    try:
        await server.wait_serving()
        server_pid = server.process.pid
        async with contextlib.AsyncExitStack() as stack:
            targets = await start_targets(args, root, server.address, fake, stack)
            for target in targets:
                await run_round(target, WARMUP_RUNS, server_pid, fake, f"warm-{target.framework}")
                target.idle_rss_mib = await settled_rss(target.pid) / 1024
                print(
                    f"{target.framework}: worker pid {target.pid}, idle RSS {target.idle_rss_mib:.1f} MiB", flush=True
                )
            for n in args.n:
                here = [t for t in targets if t.product or n <= args.peers_max_n]
                for i in range(args.rounds if n < 1000 else args.big_rounds):
                    for target in here[i % len(here) :] + here[: i % len(here)]:
                        began = time.perf_counter()
                        profile = args.py_spy if target.framework == "product" and n == max(args.n) else None
                        with PySpy(target.pid, profile and f"{profile}.{i}.txt"):
                            figures = await run_round(target, n, server_pid, fake, f"{target.framework}-{n}-{i}")
                        results.setdefault((target.framework, n), []).append(figures)
                        save(args, results)  # a round of N = 1,000 takes minutes: keep what is done
                        print(
                            f"  N={n} round {i + 1} {target.framework}: {time.perf_counter() - began:.0f} s, "
                            f"{figures['steps_per_s']:.1f} steps/s, overhead p99 {figures['overhead_p99_ms']:.0f} ms, "
                            f"worker CPU {figures['worker_cpu_ms']:.1f} ms/step; load {load_average():.2f}",
                            flush=True,
                        )
    finally:
        server.stop()
    return results


async def main(args: argparse.Namespace) -> int:
    started, load_start = time.perf_counter(), load_average()
    root = Path(tempfile.mkdtemp(prefix="bench-scale-"))
    (root / "logs").mkdir()
    fake = FakeModel(root).start()
    try:
        environment(root, fake)
        results = await measure(args, root, fake)
    finally:
        fake.stop()
        if args.keep_logs:
            shutil.copytree(root, args.keep_logs, dirs_exist_ok=True, ignore=shutil.ignore_patterns("*.db*", "blobs"))
        shutil.rmtree(root, ignore_errors=True)
    print()
    print(
        f"{time.strftime('%Y-%m-%d %H:%M')}: N concurrent runs (2 model calls + 1 calculator call each) on one worker "
        f"process per framework, one dev server; medians over rounds (min-max); load average {load_start:.2f} at "
        f"start, {load_average():.2f} at end, {os.cpu_count()} cores"
    )
    print("\n".join(table(results)))
    print(
        "ovh: step overhead (step wall time minus the model's own time in it), p50/p99 over all steps of a round; "
        "CPU per completed step (worker process, dev server); RSS: worker peak in the round minus its idle RSS, per "
        "run; events and signals per step from the runs' histories; re-asked: model calls sent again (an attempt that timed "
        "out or failed), per run"
    )
    lines, ok = verdict(results, tuple(args.peers))
    print("\n".join(lines))
    print(f"bench took {time.perf_counter() - started:.0f} s")
    return 0 if ok else 1


def save(args: argparse.Namespace, results: dict[tuple[str, int], list[dict[str, Any]]]) -> None:
    """Every round's figures so far to --json (rewritten after each round)."""
    if args.json:
        Path(args.json).write_text(json.dumps({f"{f}@{n}": r for (f, n), r in results.items()}, indent=1))


def variant(text: str) -> tuple[str, dict[str, str]]:
    """`name:VAR=value,VAR=value` -> (product+name, env)."""
    name, _, assignments = text.partition(":")
    env = dict(pair.split("=", 1) for pair in assignments.split(",") if pair)
    if not name or not env:
        raise argparse.ArgumentTypeError("expected name:VAR=value[,VAR=value]")
    return f"product+{name}", env


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--n", type=int, nargs="+", default=[10, 100, 1000], help="concurrent runs (10 100 1000)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per framework at N < 1000 (default 3)")
    parser.add_argument("--big-rounds", type=int, default=1, help="rounds at N >= 1000 (default 1)")
    parser.add_argument("--peers", nargs="*", default=list(PEERS), choices=PEERS, help="peers to measure (default all)")
    parser.add_argument("--peers-max-n", type=int, default=100, help="largest N the peers run at (default 100)")
    parser.add_argument(
        "--variant", type=variant, action="append", default=[], help="another product worker: name:VAR=value,..."
    )
    parser.add_argument(
        "--before",
        type=Path,
        help="another checkout (e.g. git archive of an older commit): its worker.py as product-before",
    )
    parser.add_argument("--quick", action="store_true", help="N = 10, 100, one round")
    parser.add_argument("--json", help="write every round's figures to this file")
    parser.add_argument(
        "--py-spy", metavar="PREFIX", help="profile the product worker at the largest N (PREFIX.<round>.txt, collapsed)"
    )
    parser.add_argument("--keep-logs", help="copy the workers' logs and the model-call log to this directory")
    args = parser.parse_args(argv)
    if args.quick:
        args.n, args.rounds, args.big_rounds = [10, 100], 1, 1
    return args


if __name__ == "__main__":
    run_bench(main(parse_args()))
