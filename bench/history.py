"""History bytes and replay time against loop steps, with the conversation inline or offloaded.

    .venv/bin/python bench/history.py                        # 10, 100, 300, 1000 steps, three modes (~5 min)
    .venv/bin/python bench/history.py --steps 10,100 --modes offload --output-kb 2

Each run is `AgentLoopWorkflow` reading a log note entry by entry (`devstack/long_run.py`): one loop
step is one `call_llm` plus one `search_notes` returning `--output-kb` KB. It starts its own headless
dev server (127.0.0.1, free ports, temporary directory), a fake Anthropic server and in-process
workers, and stops them all. The server's own continue-as-new suggestion is turned off, so the
`offload` mode shows one generation of every length; `product` continues as new past
HISTORY_MAX_EVENTS (default 2,000 events) as shipped.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from temporalio import activity, workflow

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.offline import offline_env
from devstack.dev_server import DevServer, free_port
from devstack.fake_anthropic import FakeAnthropic
from devstack.histories import generations, history_bytes
from devstack.long_run import log_reader, long_run_prompt, seed_log

MODES = {
    "inline": ("conversation inline (HISTORY_OFFLOAD=0)", {"HISTORY_OFFLOAD": "0"}),
    "offload": ("offloaded, one generation", {"HISTORY_OFFLOAD": "1", "HISTORY_MAX_EVENTS": str(10**9)}),
    "product": ("offloaded + continue-as-new (defaults)", {"HISTORY_OFFLOAD": "1"}),
}
NO_SUGGESTION = (
    "limit.historyCount.suggestContinueAsNew=1000000000",
    "limit.historySize.suggestContinueAsNew=100000000000",
)
BUDGET = {"max_steps": 10_000, "max_tokens": 10**10, "max_cost_usd": 10.0**7, "max_seconds": 7200}
REPLAY_TARGET_S = 2.0


@activity.defn(name="bench_noop")
async def bench_noop(value: int) -> int:
    """The cheapest activity there is, for the replay floor."""
    return value + 1


@workflow.defn(name="BenchReplayFloor", sandboxed=False)
class ReplayFloorWorkflow:
    """N sequential no-op activities: what replaying N activities costs the SDK, whatever the workflow does."""

    @workflow.run
    async def run(self, count: int) -> int:
        value = 0
        for _ in range(count):
            value = await workflow.execute_activity(bench_noop, value, start_to_close_timeout=timedelta(seconds=30))
        return value


async def replay_floor(client, counts: list[int]) -> list[tuple[int, int, float]]:
    """(activities, events, seconds to replay unsandboxed without plugins) for trivial workflows."""
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.worker import Replayer, UnsandboxedWorkflowRunner, Worker

    queue = f"bench-floor-{uuid.uuid4().hex[:6]}"
    out = []
    async with Worker(
        client,
        task_queue=queue,
        workflows=[ReplayFloorWorkflow],
        activities=[bench_noop],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        for count in counts:
            handle = await client.start_workflow(
                ReplayFloorWorkflow.run, count, id=f"bench-floor-{count}-{uuid.uuid4().hex[:6]}", task_queue=queue
            )
            await handle.result()
            history = await handle.fetch_history()
            replayer = Replayer(
                workflows=[ReplayFloorWorkflow],
                data_converter=pydantic_data_converter,
                workflow_runner=UnsandboxedWorkflowRunner(),
            )
            started = time.perf_counter()
            await replayer.replay_workflow(history)
            out.append((count, len(history.events), time.perf_counter() - started))
    return out


class BenchServer(DevServer):
    """The product's dev server, without the server's continue-as-new suggestion."""

    def command(self) -> list[str]:
        cmd = super().command()
        for value in NO_SUGGESTION:
            cmd += ["--dynamic-config-value", value]
        return cmd


@dataclass
class Row:
    """One run: how it ended, its histories and how long the largest took to replay."""

    mode: str
    steps: int
    status: str
    steps_done: int
    sizes: list[int]
    events: int
    replay_s: float
    wall_s: float
    lean_replay_s: float
    curve: list[tuple[int, int]]
    """(loop step, bytes of the current generation's history when that step's tool was scheduled)."""

    @property
    def total(self) -> int:
        return sum(self.sizes)


async def replay_seconds(history, lean: bool = False) -> float:
    """Wall time of replaying one history with a replayer configured like the worker (lean: no sandbox, no plugin)."""
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.worker import Replayer, UnsandboxedWorkflowRunner

    from config.settings import Settings
    from service.plugin import AgentServicePlugin, workflows

    if lean:
        replayer = Replayer(
            workflows=workflows(), data_converter=pydantic_data_converter, workflow_runner=UnsandboxedWorkflowRunner()
        )
    else:
        replayer = Replayer(workflows=[], plugins=[AgentServicePlugin(Settings.from_env())])
    started = time.perf_counter()
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    elapsed = time.perf_counter() - started
    if result.replay_failure is not None:
        raise RuntimeError(f"replay failed: {result.replay_failure}")
    return elapsed


def growth_curve(histories) -> list[tuple[int, int]]:
    """History bytes of the running generation at each loop step: a sawtooth when the run continues as new."""
    curve: list[tuple[int, int]] = []
    for history in histories:
        size = 0
        for event in history.events:
            size += event.ByteSize() + 3  # field tag and length prefix of each event in the History message
            attrs = event.activity_task_scheduled_event_attributes
            if event.HasField("activity_task_scheduled_event_attributes") and attrs.activity_type.name == "run_tool":
                curve.append((len(curve) + 1, size))
    return curve


async def one_run(client, queue: str, mode: str, steps: int, keep_dir: str = "") -> Row:
    """Run one loop to its end (or the server's limit) and measure its histories."""
    from temporalio.client import WorkflowFailureError

    started = time.perf_counter()
    handle = await client.start_workflow(
        "AgentLoopWorkflow",
        {"prompt": long_run_prompt(steps), "budget": BUDGET},
        id=f"bench-history-{mode}-{steps}-{uuid.uuid4().hex[:6]}",
        task_queue=queue,
    )
    try:
        result = await handle.result()
        status = result["status"]
    except WorkflowFailureError as exc:
        status = f"failed: {exc.cause}"[:90]
    wall = time.perf_counter() - started
    histories = await generations(client, handle.id, handle.first_execution_run_id or handle.run_id)
    largest = max(histories, key=history_bytes)
    if keep_dir:
        Path(keep_dir).mkdir(parents=True, exist_ok=True)
        (Path(keep_dir) / f"{mode}-{steps}.json").write_text(largest.to_json())
    curve = growth_curve(histories)
    sizes = [history_bytes(h) for h in histories]
    replay = await replay_seconds(largest)
    lean = await replay_seconds(largest, lean=True)
    return Row(mode, steps, status, len(curve), sizes, len(largest.events), replay, wall, lean, curve)


async def measure(args: argparse.Namespace, root: Path, log) -> list[Row]:
    from config.settings import Settings
    from service.connect import connect
    from worker import build_worker

    server = BenchServer(
        port=free_port(), ui_port=None, db_file=str(root / "dev.db"), log_path=str(root / "server.log")
    ).start()
    rows: list[Row] = []
    try:
        await server.wait_serving()
        client = await connect(Settings.from_env(), target_host=server.address)
        for mode in args.modes:
            env = {**os.environ, **MODES[mode][1], "TEMPORAL_TASK_QUEUE": f"bench-{mode}-{uuid.uuid4().hex[:6]}"}
            settings = Settings.from_env(env)
            async with build_worker(client, settings):
                failed_at: int | None = None
                for steps in args.steps:
                    if failed_at is not None:
                        log(f"  {mode:8} {steps:>5} steps: skipped (failed at {failed_at} steps)")
                        continue
                    row = await one_run(client, settings.task_queue, mode, steps, args.keep)
                    rows.append(row)
                    log(
                        f"  {mode:8} {steps:>5} steps: {row.status}, {row.steps_done} done, largest history {max(row.sizes):,} B, "
                        f"{len(row.sizes)} generation(s), replay {row.replay_s:.2f} s, run {row.wall_s:.1f} s"
                    )
                    if row.status != "completed":
                        failed_at = steps
        if args.floor:
            args.floor_rows = await replay_floor(client, [2 * s for s in args.steps])
    finally:
        server.stop()
    return rows


def report(rows: list[Row], args: argparse.Namespace) -> bool:
    """Print the table and the verdict; True when the offload targets are met."""
    print(
        f"\nHistory per run: AgentLoopWorkflow, one loop step = call_llm + search_notes returning {args.output_kb} KB; "
        f"{os.cpu_count()} CPUs"
    )
    head = f"{'mode':<40}{'steps':>6}{'done':>6}{'gens':>5}{'largest history':>17}{'total':>14}{'B/step':>9}{'events':>8}{'replay s':>9}{'lean s':>8}{'run s':>7}  status"
    print(head)
    print("-" * len(head))
    for r in rows:
        per_step = r.total // max(1, r.steps_done)
        print(
            f"{MODES[r.mode][0]:<40}{r.steps:>6}{r.steps_done:>6}{len(r.sizes):>5}{max(r.sizes):>17,}{r.total:>14,}"
            f"{per_step:>9,}{r.events:>8}{r.replay_s:>9.2f}{r.lean_replay_s:>8.2f}{r.wall_s:>7.1f}  {r.status}"
        )
    print(
        "steps: loop steps (call_llm + run_tool; the result's `steps` is 2 x steps + 1). largest history: bytes of the biggest"
    )
    print(
        "generation (fetch_history, serialized). replay: that generation with the worker's replayer (sandbox, OpenTelemetry"
    )
    print("plugin); lean: unsandboxed, no plugin. run: wall time of the whole run.")
    for count, events, seconds in getattr(args, "floor_rows", []):
        print(
            f"replay floor: a workflow of {count} no-op activities ({events} events) replays in {seconds:.2f} s (unsandboxed, no plugin)"
        )
    offload = [r for r in rows if r.mode == "offload" and r.status == "completed"]
    ok = True
    if len(offload) >= 2:
        small, big = offload[0], offload[-1]
        growth = (big.total / big.steps) / (small.total / small.steps)
        print(
            f"offload: bytes per step {small.total // small.steps:,} at {small.steps} steps, {big.total // big.steps:,} at "
            f"{big.steps} steps ({growth:.2f}x; flat means linear total)"
        )
        ok &= growth < 1.5
        slowest = max(offload, key=lambda r: r.steps)
        print(
            f"offload: replay of a {slowest.steps}-step generation {slowest.replay_s:.2f} s (target < {REPLAY_TARGET_S:g} s): "
            f"{'PASS' if slowest.replay_s < REPLAY_TARGET_S else 'FAIL'}"
        )
        ok &= slowest.replay_s < REPLAY_TARGET_S
    return ok


def plot(rows: list[Row], path: Path, output_kb: int) -> None:
    """Left: history bytes step by step in each mode's longest run. Right: replay time of the largest generation."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.4))
    for mode in MODES:
        mine = [r for r in rows if r.mode == mode]
        if not mine:
            continue
        longest = max(mine, key=lambda r: r.steps_done)
        (line,) = left.plot([s for s, _ in longest.curve], [b for _, b in longest.curve], label=MODES[mode][0])
        if longest.status != "completed":
            step, size = longest.curve[-1]
            left.plot([step], [size], marker="x", markersize=10, color=line.get_color())
            left.annotate(
                f"killed by the server after {step} steps",
                (step, size),
                textcoords="offset points",
                xytext=(-175, -16),
                fontsize=8,
            )
        ok = [r for r in mine if r.status == "completed"]
        right.plot(
            [r.steps for r in ok], [r.replay_s for r in ok], marker="o", color=line.get_color(), label=MODES[mode][0]
        )
    left.axhline(50 * 1024 * 1024, color="grey", linestyle="--", linewidth=0.8)
    left.text(1.2, 50 * 1024 * 1024 * 0.6, "Temporal's 50 MB limit", fontsize=8, color="grey")
    left.set(
        xscale="log",
        yscale="log",
        xlabel="loop step",
        ylabel="history bytes of the current run",
        title=f"History growth ({output_kb} KB tool output per step)",
    )
    right.set(
        xscale="log", xlabel="loop steps in the run", ylabel="replay of its largest history (s)", title="Replay time"
    )
    right.axhline(REPLAY_TARGET_S, color="grey", linestyle="--", linewidth=0.8)
    for ax in (left, right):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"plot saved to {path}")


async def main(args: argparse.Namespace) -> int:
    root = Path(tempfile.mkdtemp(prefix="bench-history-"))
    fake = FakeAnthropic(responder=log_reader).start()
    os.environ.update(offline_env(fake.url, root))
    for var in ("LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY", "AGENT_MODEL", "TEMPORAL_API_KEY", "TEMPORAL_NAMESPACE"):
        os.environ.pop(var, None)
    seed_log(os.environ["NOTES_DB"], max(args.steps), args.output_kb * 1000)
    try:
        rows = await measure(args, root, lambda line: print(line, flush=True))
    finally:
        fake.stop()
        shutil.rmtree(root, ignore_errors=True)
    ok = report(rows, args)
    if args.plot:
        plot(rows, Path(args.plot), args.output_kb)
    return 0 if ok else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--steps", default="10,100,300,1000", help="comma-separated loop step counts (default 10,100,300,1000)"
    )
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, from {', '.join(MODES)}")
    parser.add_argument("--output-kb", type=int, default=20, help="size of each tool output in KB (default 20)")
    parser.add_argument(
        "--floor", action="store_true", help="also replay trivial workflows of 2 x steps activities (the SDK's floor)"
    )
    parser.add_argument(
        "--keep", default="", help="directory to save each run's largest history as JSON (for profiling)"
    )
    parser.add_argument("--plot", default="bench/out/history.png", help="PNG to write ('' for none)")
    args = parser.parse_args(argv)
    args.steps = sorted(int(s) for s in args.steps.split(","))
    args.modes = [m for m in args.modes.split(",") if m]
    if unknown := [m for m in args.modes if m not in MODES]:
        parser.error(f"unknown modes {unknown}")
    return args


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        code = asyncio.run(main(parse_args()))
    sys.stdout.flush()
    os._exit(locals().get("code", 130))  # sdk-python#300: avoid a rare abort at interpreter exit
