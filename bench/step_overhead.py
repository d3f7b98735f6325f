"""Orchestration overhead per agent-loop step: Temporal dev server vs. the same loop in-process.

    .venv/bin/python bench/step_overhead.py              # all variants, --steps 20 --runs 5 (~50 s)
    .venv/bin/python bench/step_overhead.py --quick      # baseline and product configuration only (~10-20 s)

One loop step is one `call_llm` plus one `run_tool` (the calculator, which needs no approval).
The model is devstack's fake Anthropic server answering at once, so what remains is orchestration.
The same activity methods, provider, fake server and conversation handling run under Temporal
(`AgentLoopWorkflow` on a worker from `worker.build_worker`, on a dev server this script starts)
and in a plain Python loop; the difference per step is what Temporal costs. Each Temporal run's
event history is cut into phases to show where that time goes, and variants (no tracing plugin,
no sandbox, tool as a local activity, in-memory server, default dynamic config) show what each
factor is worth. See bench/README.md.

Not a pytest test. Exit status 0 when the product configuration meets the target, 1 when not.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # runnable from anywhere: the repo root holds the packages
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from bench.entry import run_bench
from models.conversation import Conversation, ToolOutcome
from models.llm import DEFAULT_MAX_OUTPUT_TOKENS
from models.tooling import ToolInvocation
from tools.catalog import REGISTRY
from workflows.ledger import RunLedger

TARGET_MS = 15.0
"""The issue's target: orchestration overhead per loop step, on this machine."""

PROMPT_PREFIX = "bench: tool steps="
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# --------------------------------------------------------------------------------------------
# The fake model: N calculator calls, then a final answer, no delay.
# --------------------------------------------------------------------------------------------


def prompt_for(steps: int) -> str:
    return f"{PROMPT_PREFIX}{steps} (call the calculator that many times, then answer)"


def budget_for(steps: int) -> dict[str, Any]:
    """Ceilings far above what the run needs (a loop step is two ledger steps)."""
    return {"max_steps": 2 * steps + 10, "max_tokens": 100_000_000, "max_cost_usd": 1_000_000.0, "max_seconds": 3600}


def bench_responder(body: dict[str, Any]):
    """A calculator call until the conversation holds N assistant turns (N from the prompt), then text."""
    from devstack.fake_anthropic import Reply

    messages = body["messages"]
    first = messages[0]["content"]
    text = first if isinstance(first, str) else "".join(b.get("text", "") for b in first if isinstance(b, dict))
    steps = int(text.split(PROMPT_PREFIX, 1)[1].split()[0])
    turns = sum(1 for m in messages if m["role"] == "assistant")
    if turns < steps:
        return Reply(tool_calls=[("calculator", {"expression": f"{turns} + 1"})])
    return Reply(text=f"counted to {turns}")


def fake_model_class(nagle: bool):
    """devstack's FakeAnthropic (TCP_NODELAY on its sockets), or with Nagle's algorithm back on for `--nagle`.

    Its handler sends the response headers and the body in two writes; with Nagle's algorithm on,
    the body waits for the client's delayed ACK, up to 40 ms per call (measured: ~50 ms per
    in-process call_llm instead of ~5 ms). That is latency of the fake, not of orchestration.
    """
    from devstack.fake_anthropic import FakeAnthropic

    if not nagle:
        return FakeAnthropic

    class NagleFakeAnthropic(FakeAnthropic):
        def _handler_class(self):
            handler = super()._handler_class()
            handler.disable_nagle_algorithm = False
            return handler

    return NagleFakeAnthropic


# --------------------------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class RunTiming:
    """One run of the loop."""

    wall_s: float
    steps: int
    cpu_here_s: float
    """CPU of this process (worker, client, fake model thread; all threads)."""
    cpu_threads_s: dict[str, float]
    """cpu_here_s by thread group: asyncio main thread, workflow activation thread, SDK core (Rust), other."""
    cpu_server_s: float = 0.0
    phases_s: dict[str, float] = dataclasses.field(default_factory=dict)
    """Seconds per phase summed over the run (Temporal: from the event history)."""
    step_ms: list[float] = dataclasses.field(default_factory=list)
    """Temporal: duration of each loop step, call_llm scheduled to the next call_llm scheduled."""
    workflow_tasks: int = 0
    activities: int = 0

    @property
    def per_step_ms(self) -> float:
        return 1000 * self.wall_s / self.steps


def _stat_cpu_s(path: str) -> float:
    fields = Path(path).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def process_cpu_s(pid: int) -> float:
    """utime + stime of a process, all threads (Linux /proc)."""
    return _stat_cpu_s(f"/proc/{pid}/stat")


THREAD_GROUPS = ("main", "workflow", "rust", "other")


def _thread_group(tid: int, py_name: str | None) -> str:
    if tid == threading.main_thread().native_id:
        return "main"
    if py_name is not None:
        return "workflow" if py_name.startswith("temporal_workflow") else "other"
    return "rust"  # threads Python does not know: the SDK core's tokio runtime and its helpers


def thread_cpu_s() -> dict[str, float]:
    """This process's CPU by thread group; `other` also holds threads that have exited."""
    groups = dict.fromkeys(THREAD_GROUPS, 0.0)
    python_names = {t.native_id: t.name for t in threading.enumerate()}
    for tid in os.listdir("/proc/self/task"):
        try:
            cpu = _stat_cpu_s(f"/proc/self/task/{tid}/stat")
        except OSError:
            continue  # the thread ended meanwhile
        groups[_thread_group(int(tid), python_names.get(int(tid)))] += cpu
    groups["other"] += process_cpu_s(os.getpid()) - sum(groups.values())
    return groups


class CpuMeter:
    """CPU spent here (by thread group) and by a server process between start() and stop()."""

    def __init__(self, server_pid: int | None = None) -> None:
        self.server_pid = server_pid
        self._here = thread_cpu_s()
        self._server = process_cpu_s(server_pid) if server_pid else 0.0

    def stop(self) -> tuple[float, dict[str, float], float]:
        here = thread_cpu_s()
        threads = {k: here[k] - self._here[k] for k in THREAD_GROUPS}
        server = process_cpu_s(self.server_pid) - self._server if self.server_pid else 0.0
        return sum(threads.values()), threads, server


async def inprocess_run(call_llm, run_tool, steps: int) -> RunTiming:
    """What SteeredLoop does, as plain awaits on the worker's own activity methods."""
    from models.llm import LlmRequest
    from models.run import Budget
    from tools.registry import check_tool_call

    agent = REGISTRY.agent("assistant")
    phases: dict[str, float] = defaultdict(float)
    clock = time.perf_counter
    meter, t0 = CpuMeter(), clock()
    ledger = RunLedger(budget=Budget(**budget_for(steps)), started_at=datetime.now(UTC))
    conversation = Conversation.start(prompt_for(steps))
    tool_steps = 0
    while True:
        assert ledger.exceeded(datetime.now(UTC)) is None
        request = LlmRequest(
            agent=agent.name,
            model=None,
            conversation=conversation,
            max_tokens=ledger.output_allowance(DEFAULT_MAX_OUTPUT_TOKENS),
        )
        t = clock()
        response = await call_llm(request)
        phases["call_llm body"] += clock() - t
        ledger.record_llm(response)
        conversation.add_assistant_turn(response.text, response.tool_calls)
        if not response.tool_calls:
            break
        outcomes: list[ToolOutcome] = []
        for call in response.tool_calls:
            check = check_tool_call(REGISTRY, agent, call.name, call.arguments)
            assert check.tool is not None and not check.tool.requires_approval, check.error
            invocation = ToolInvocation(
                agent=agent.name, call=call, idempotency_key=f"bench:step-{ledger.steps + 1}:{call.id}"
            )
            t = clock()
            outcome = await run_tool(invocation)
            phases["run_tool body"] += clock() - t
            assert not outcome.is_error, outcome.content
            ledger.record_tool(call, outcome)
            outcomes.append(outcome)
        conversation.add_tool_results(outcomes)
        tool_steps += 1
    wall = clock() - t0
    assert tool_steps == steps, (tool_steps, steps)
    phases["loop glue (models, ledger)"] = wall - sum(phases.values())
    cpu, threads, _ = meter.stop()
    return RunTiming(wall, steps, cpu, threads, phases_s=dict(phases))


PHASES = (
    ("wft_queue", "workflow task schedule-to-start (server: transfer queue, matching)"),
    ("wft_run", "workflow task start-to-complete (worker: activation, encode; server: persist)"),
    ("act_queue", "activity schedule-to-start (eager dispatch: ~0)"),
    ("act_run", "activity start-to-complete (worker: decode, body, encode; server: persist)"),
    ("other", "other gaps in the history (search-attribute upserts, markers)"),
    ("client", "client: start RPC and result long-poll, outside the history"),
)


def history_phases(events) -> tuple[dict[str, float], list[float], int, int]:
    """Seconds per phase from WorkflowExecutionStarted to the closing event; loop-step durations; WFT and activity counts."""
    from temporalio.api.enums.v1 import EventType as E

    phases: dict[str, float] = defaultdict(float)
    llm_scheduled: list[int] = []
    wfts = activities = 0
    previous = None
    for event in events:
        kind = event.event_type
        now = event.event_time.ToNanoseconds()
        if (
            kind == E.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
            and event.activity_task_scheduled_event_attributes.activity_type.name == "call_llm"
        ):
            llm_scheduled.append(now)
        if previous is not None:
            gap = (now - previous) / 1e9
            if kind == E.EVENT_TYPE_WORKFLOW_TASK_STARTED:
                phases["wft_queue"] += gap
            elif kind in (E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED, E.EVENT_TYPE_WORKFLOW_TASK_FAILED):
                phases["wft_run"] += gap
                wfts += 1
            elif kind == E.EVENT_TYPE_ACTIVITY_TASK_STARTED:
                phases["act_queue"] += gap
            elif kind == E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED:
                phases["act_run"] += gap
                activities += 1
            else:
                phases["other"] += gap
        previous = now
    steps_ms = [(b - a) / 1e6 for a, b in zip(llm_scheduled, llm_scheduled[1:])]
    return dict(phases), steps_ms, wfts, activities


async def temporal_run(
    client, task_queue: str, workflow_type: str, steps: int, server_pid: int, history: bool = True
) -> RunTiming:
    """Start a loop workflow, wait for its result, and cut its history into phases."""
    payload = {"prompt": prompt_for(steps), "budget": budget_for(steps)}
    meter, t0 = CpuMeter(server_pid), time.perf_counter()
    handle = await client.start_workflow(
        workflow_type, payload, id=f"bench-{uuid.uuid4().hex[:12]}", task_queue=task_queue
    )
    result = await handle.result()
    wall = time.perf_counter() - t0
    cpu, threads, server_cpu = meter.stop()
    timing = RunTiming(wall, steps, cpu, threads, server_cpu)
    if not isinstance(result, dict):
        result = result.model_dump(mode="json")
    usage = result["usage"]
    assert result["status"] == "completed" and usage["tool_calls"] == steps and usage["llm_calls"] == steps + 1, result
    if history:
        events = [e async for e in handle.fetch_history_events()]
        phases, timing.step_ms, timing.workflow_tasks, timing.activities = history_phases(events)
        inside = (events[-1].event_time.ToNanoseconds() - events[0].event_time.ToNanoseconds()) / 1e9
        phases["client"] = wall - inside
        timing.phases_s = phases
    return timing


# --------------------------------------------------------------------------------------------
# Variants: servers, clients, workers
# --------------------------------------------------------------------------------------------

SERVERS = {
    "fast": {"fast_config": True, "in_memory": False},
    "memory": {"fast_config": True, "in_memory": True},
    "default": {"fast_config": False, "in_memory": False},
}
"""fast: devstack's server as the product starts it (transferProcessorMaxPollRPS=2000, SQLite + WAL)."""


def start_server(root: Path, name: str, *, fast_config: bool, in_memory: bool):
    """A headless dev server on free ports; variants drop the product's dynamic config or its SQLite file."""
    from devstack.dev_server import FAST_DYNAMIC_CONFIG, SQLITE_PRAGMAS, DevServer, free_port

    class VariantServer(DevServer):
        def command(self) -> list[str]:
            cmd = super().command()
            drop: set[tuple[str, str]] = set()
            if not fast_config:
                drop |= {("--dynamic-config-value", v) for v in FAST_DYNAMIC_CONFIG}
            if in_memory:
                drop |= {("--db-filename", self.db_file)} | {("--sqlite-pragma", p) for p in SQLITE_PRAGMAS}
            out: list[str] = []
            i = 0
            while i < len(cmd):
                if i + 1 < len(cmd) and (cmd[i], cmd[i + 1]) in drop:
                    i += 2
                    continue
                out.append(cmd[i])
                i += 1
            return out

    directory = root / name
    directory.mkdir(parents=True, exist_ok=True)
    server = VariantServer(
        port=free_port(), ui_port=None, db_file=str(directory / "dev.db"), log_path=str(directory / "dev-server.log")
    )
    return server.start()


async def product_client(address: str):
    """The product's client: pydantic converter and the OpenTelemetry plugin (service.connect.connect)."""
    from config.settings import Settings
    from service.connect import connect

    return await connect(Settings.from_env(), target_host=address)


async def plain_client(address: str):
    """The same converter, no plugins: isolates the tracing plugin."""
    from temporalio.client import Client
    from temporalio.contrib.pydantic import pydantic_data_converter

    return await Client.connect(address, data_converter=pydantic_data_converter)


class StockSandboxedWorkflowRunner(SandboxedWorkflowRunner):
    """The SDK's sandbox as it ships: a subclass, so service/sandbox.py leaves its context lookups in place."""


@dataclasses.dataclass
class Variant:
    key: str
    label: str
    server: str = "fast"
    client: Callable[[str], Awaitable[Any]] = product_client
    sandboxed: bool = True
    runs: int | None = None
    steps: int | None = None
    stock_sandbox: bool = False
    """The SDK's sandbox with its per-payload serialization-context lookups (before service/sandbox.py)."""
    primed: bool = False
    """Run once untimed right before each timed run: a server rate limiter starts the timed run drained
    (steady state), not with the burst it refilled while the other variants ran."""

    workflow_type = "AgentLoopWorkflow"


def recorded_worker_args(client, settings) -> tuple[tuple, dict[str, Any]]:
    """The arguments `worker.build_worker` passes to `Worker`, from a call with `Worker` swapped for a recorder.

    Variants thus get exactly the product's options and activity objects, and no bridge worker is
    registered twice on a task queue.
    """
    import worker as worker_module

    recorded: dict[str, Any] = {}

    def record(*args: Any, **kwargs: Any) -> None:
        recorded.update(args=args, kwargs=kwargs)

    real, worker_module.Worker = worker_module.Worker, record
    try:
        worker_module.build_worker(client, settings)
    finally:
        worker_module.Worker = real
    return recorded["args"], dict(recorded["kwargs"])


def product_activities(client, settings) -> tuple[Callable[..., Awaitable[Any]], Callable[..., Awaitable[Any]]]:
    """call_llm and run_tool exactly as the worker's plugin builds them (provider, registry, settings), for the baseline."""
    from service.activities import build_activities

    by_name = {getattr(fn, "__name__", ""): fn for fn in build_activities(settings, client)}
    return by_name["call_llm"], by_name["run_tool"]


def build_variant_worker(client, settings, variant: Variant):
    """The worker `worker.build_worker` makes, with the variant's changes to its options."""
    from temporalio.worker import UnsandboxedWorkflowRunner, Worker

    import worker as worker_module

    traced = variant.client is not plain_client
    if variant.sandboxed and traced and not variant.stock_sandbox:
        return worker_module.build_worker(client, settings)
    args, kwargs = recorded_worker_args(client, settings)
    if not traced:
        # The worker's own plugin installs the tracing interceptor too; the untraced variants drop it there.
        for plugin in kwargs["plugins"]:
            plugin.interceptors = None
    if not variant.sandboxed:
        kwargs["workflow_runner"] = UnsandboxedWorkflowRunner()
    if variant.stock_sandbox:
        kwargs["workflow_runner"] = StockSandboxedWorkflowRunner()
    return Worker(*args, **kwargs)


def variants_for(args: argparse.Namespace) -> list[Variant]:
    product = Variant("product", "Temporal: product worker, dev server as devstack starts it")
    if args.quick:
        return [product]
    return [
        product,
        Variant("no-otel", "  - without the OpenTelemetry plugin", client=plain_client),
        Variant("stock-sandbox", "  - the SDK's sandbox context lookups (no service/sandbox.py)", stock_sandbox=True),
        Variant("no-sandbox", "  - with UnsandboxedWorkflowRunner", sandboxed=False),
        Variant("lean", "  - no plugin, no sandbox", client=plain_client, sandboxed=False),
        Variant("in-memory", "  - dev server in memory instead of SQLite", server="memory"),
        Variant(
            "default-cfg",
            "  - dev server with default dynamic config",
            server="default",
            runs=max(1, min(args.runs, args.default_config_runs)),
            primed=True,
        ),
    ]


def scheduled_rounds(variant: Variant, rounds: int) -> set[int]:
    """The rounds a variant runs in: all, or (for the slow one) spread evenly over them."""
    wanted = min(rounds, variant.runs or rounds)
    return {k * rounds // wanted for k in range(wanted)}


async def measure(
    variants: list[Variant],
    root: Path,
    args: argparse.Namespace,
    results: dict[str, list[RunTiming]],
    log: Callable[[str], None],
) -> None:
    """Every server and worker up at once (idle ones cost ~0 CPU), then runs round-robin: the baseline and each
    variant in turn, so the drift of a shared machine hits all of them alike."""
    from config.settings import Settings

    servers: dict[str, Any] = {}
    try:
        for name in dict.fromkeys(v.server for v in variants):
            servers[name] = start_server(root, name, **SERVERS[name])
            await servers[name].wait_serving()  # the port opens before the frontend serves
        async with contextlib.AsyncExitStack() as stack:
            queues: dict[str, tuple[Any, str, int]] = {}
            for variant in variants:
                server = servers[variant.server]
                client = await variant.client(server.address)
                settings = Settings.from_env(
                    {**os.environ, "TEMPORAL_TASK_QUEUE": f"bench-{variant.key}-{uuid.uuid4().hex[:6]}"}
                )
                await stack.enter_async_context(build_variant_worker(client, settings, variant))
                queues[variant.key] = (client, settings.task_queue, server.process.pid)
            client, queue, _ = queues["product"]
            call_llm, run_tool = product_activities(
                client, Settings.from_env({**os.environ, "TEMPORAL_TASK_QUEUE": queue})
            )
            for _ in range(args.warmup):
                await inprocess_run(call_llm, run_tool, min(args.steps, 3))
            for variant in variants:
                client, queue, pid = queues[variant.key]
                for _ in range(args.warmup):
                    await temporal_run(client, queue, variant.workflow_type, min(args.steps, 3), pid, history=False)
            for i in range(args.runs):
                results.setdefault("in-process", []).append(
                    timing := await inprocess_run(call_llm, run_tool, args.steps)
                )
                log(f"  round {i + 1}: in-process {timing.per_step_ms:.2f} ms/step")
                for variant in variants:
                    if i not in scheduled_rounds(variant, args.runs):
                        continue
                    client, queue, pid = queues[variant.key]
                    if variant.primed:
                        await temporal_run(
                            client, queue, variant.workflow_type, variant.steps or args.steps, pid, history=False
                        )
                    timing = await temporal_run(client, queue, variant.workflow_type, variant.steps or args.steps, pid)
                    results.setdefault(variant.key, []).append(timing)
                    log(f"  round {i + 1}: {variant.key} {timing.per_step_ms:.1f} ms/step")
    finally:
        for server in servers.values():
            server.stop()


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def med(values) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")


def per_step(timings: list[RunTiming]) -> float:
    return med(t.per_step_ms for t in timings)


def phases_per_step(timings: list[RunTiming]) -> dict[str, float]:
    keys = {k for t in timings for k in t.phases_s}
    return {k: med(1000 * t.phases_s.get(k, 0.0) / t.steps for t in timings) for k in keys}


def cpu_per_step(timings: list[RunTiming], what: Callable[[RunTiming], float]) -> float:
    return med(1000 * what(t) / t.steps for t in timings)


def report(
    variants: list[Variant], results: dict[str, list[RunTiming]], args: argparse.Namespace, elapsed: float
) -> float:
    import temporalio

    baseline = results["in-process"]
    base = per_step(baseline)
    base_cpu = cpu_per_step(baseline, lambda t: t.cpu_here_s)
    print()
    print("Orchestration overhead per agent-loop step (1 call_llm + 1 run_tool), zero-latency fake model")
    print(
        f"{args.steps} loop steps per run ({args.steps + 1} LLM calls, {args.steps} tool calls), median of {args.runs} runs, "
        f"round-robin; {os.cpu_count()} CPUs, load average at start {args.load_at_start:.2f}; temporalio {temporalio.__version__}"
    )
    print()
    head = (
        f"{'variant':<56}{'ms/step':>8}{'min-max':>12}{'overhead':>9}{'x base':>7}"
        f"{'CPU ms/step: here':>19}{'server':>7}{'extra':>7}"
    )
    print(head)
    print("-" * len(head))
    print(
        f"{'in-process, no Temporal (same activities, provider, fake)':<56}{base:>8.2f}{_spread(baseline):>12}{'':>9}{1.0:>7.1f}"
        f"{base_cpu:>19.1f}{'-':>7}{'-':>7}"
    )
    for variant in variants:
        timings = results[variant.key]
        value = per_step(timings)
        label = variant.label
        if timings[0].steps != args.steps or len(timings) != args.runs:
            label += f" [{len(timings)} runs]"
        here = cpu_per_step(timings, lambda t: t.cpu_here_s)
        server = cpu_per_step(timings, lambda t: t.cpu_server_s)
        print(
            f"{label:<56}{value:>8.1f}{_spread(timings):>12}{value - base:>9.1f}{value / base:>7.1f}"
            f"{here:>19.1f}{server:>7.1f}{here - base_cpu + server:>7.1f}"
        )
    print(
        "ms/step: wall clock from start_workflow to result, / steps. CPU: this process (worker, client, fake model; all"
    )
    print("threads), the dev server, and 'extra' = CPU beyond the in-process loop (here - baseline here + server).")

    print()
    print("Where a loop step's time goes: ms per loop step, from event-history timestamps (median of runs)")
    head = f"{'phase':<78}" + "".join(f"{v.key:>12}" for v in variants)
    print(head)
    print("-" * len(head))
    table = {v.key: phases_per_step(results[v.key]) for v in variants}
    for key, label in PHASES:
        print(f"{label:<78}" + "".join(f"{table[v.key].get(key, 0.0):>12.2f}" for v in variants))
    print(f"{'total':<78}" + "".join(f"{per_step(results[v.key]):>12.2f}" for v in variants))
    print(
        f"{'workflow tasks + activities per loop step':<78}"
        + "".join(
            f"{med(t.workflow_tasks / t.steps for t in results[v.key]):>7.2f} +{med(t.activities / t.steps for t in results[v.key]):<4.2f}"
            for v in variants
        )
    )
    print(
        f"{'ms per workflow task, start-to-complete':<78}"
        + "".join(
            f"{med(1000 * t.phases_s['wft_run'] / t.workflow_tasks for t in results[v.key]):>12.2f}" for v in variants
        )
    )
    print(
        f"{'ms per activity, start-to-complete':<78}"
        + "".join(
            f"{med(1000 * t.phases_s['act_run'] / max(1, t.activities) for t in results[v.key]):>12.2f}"
            for v in variants
        )
    )
    q = max(1, args.steps // 4)
    print(
        f"{f'ms per loop step, first {q} steps':<78}"
        + "".join(f"{med(x for t in results[v.key] for x in t.step_ms[:q]):>12.2f}" for v in variants)
    )
    print(
        f"{f'ms per loop step, last {q} steps (larger conversation in every call_llm input)':<78}"
        + "".join(f"{med(x for t in results[v.key] for x in t.step_ms[-q:]):>12.2f}" for v in variants)
    )
    print("(the calculator runs as a local activity, inside a workflow task, so its time is in that row)")

    print()
    print("CPU ms per loop step by thread (median of runs)")
    columns = [("in-process", baseline), *((v.key, results[v.key]) for v in variants)]
    head = f"{'thread':<78}" + "".join(f"{key:>12}" for key, _ in columns)
    print(head)
    print("-" * len(head))
    labels = {
        "main": "asyncio main thread: activity bodies, SDK Python (payloads, interceptors), client",
        "workflow": "workflow activation thread: workflow code (sandboxed unless no-sandbox)",
        "rust": "SDK core (Rust/tokio): gRPC, state machines",
        "other": "other threads: fake model server (same work in every column), exited threads",
    }
    for group in THREAD_GROUPS:
        print(
            f"{labels[group]:<78}"
            + "".join(f"{cpu_per_step(t, lambda r, g=group: r.cpu_threads_s[g]):>12.2f}" for _, t in columns)
        )
    print(
        f"{'dev server process':<78}"
        + "".join(
            f"{cpu_per_step(t, lambda r: r.cpu_server_s):>12.2f}" if key != "in-process" else f"{'-':>12}"
            for key, t in columns
        )
    )

    base_phases = phases_per_step(baseline)
    print()
    print("in-process loop, ms per loop step: " + ", ".join(f"{k} {v:.2f}" for k, v in sorted(base_phases.items())))
    print()
    product = per_step(results["product"])
    overhead = product - base
    print(
        f"in-process: {base:.1f} ms/step; Temporal (product configuration): {product:.1f} ms/step; "
        f"difference {overhead:.1f} ms ({product / base:.1f}x); bench took {elapsed:.0f} s"
    )
    print(
        f"overhead per step: {overhead:.1f} ms (target <= {TARGET_MS:g} ms): {'PASS' if overhead <= TARGET_MS else 'FAIL'}"
    )
    return overhead


def _spread(timings: list[RunTiming]) -> str:
    values = [t.per_step_ms for t in timings]
    return f"{min(values):.1f}-{max(values):.1f}"


async def main(args: argparse.Namespace) -> int:
    def log(line: str) -> None:
        if args.verbose:
            print(line, flush=True)

    started = time.perf_counter()
    args.load_at_start = os.getloadavg()[0]
    root = Path(tempfile.mkdtemp(prefix="bench-step-overhead-"))
    fake = fake_model_class(args.nagle)(responder=bench_responder).start()
    from bench.offline import offline_env

    os.environ.update(offline_env(fake.url, root))
    for var in (
        "LANGFUSE_PUBLIC_KEY",
        "LANGFUSE_SECRET_KEY",
        "LANGFUSE_HOST",
        "LANGFUSE_BASE_URL",
        "AGENT_MODEL",
        "TEMPORAL_API_KEY",
        "TEMPORAL_NAMESPACE",
    ):
        os.environ.pop(var, None)

    variants = variants_for(args)
    results: dict[str, list[RunTiming]] = {}
    try:
        await measure(variants, root, args, results, log)
    finally:
        fake.stop()
        shutil.rmtree(root, ignore_errors=True)

    overhead = report(variants, results, args, time.perf_counter() - started)
    return 0 if overhead <= TARGET_MS else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="loop steps (call_llm + run_tool) per run (default 20)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per variant, medians reported (default 5)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed 3-step runs per variant first (default 2)")
    parser.add_argument(
        "--default-config-runs", type=int, default=3, help="runs of the slow default-config variant (default 3)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="only the in-process baseline and the product configuration"
    )
    parser.add_argument(
        "--nagle",
        action="store_true",
        help="turn Nagle's algorithm back on in the fake (adds up to 40 ms per LLM call)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="print each run as it finishes")
    args = parser.parse_args(argv)
    if args.steps < 2 or args.runs < 1 or args.warmup < 0 or args.default_config_runs < 1:
        parser.error("--steps must be at least 2, --runs and --default-config-runs at least 1, --warmup at least 0")
    return args


if __name__ == "__main__":
    run_bench(main(parse_args()))
