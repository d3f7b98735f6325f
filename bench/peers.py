"""Durability cost per loop step: this product beside the OpenAI Agents SDK's and pydantic-ai's Temporal integrations.

    .venv/bin/python bench/peers.py              # 20 steps x 5 interleaved rounds, history at 30 steps (~2 min)
    .venv/bin/python bench/peers.py --rounds 9 -v

One dev server (devstack's settings), one zero-latency fake model per wire protocol (devstack's FakeAnthropic
for the product and pydantic-ai, FakeOpenAI's Responses API for the OpenAI Agents SDK), one calculator tool.
A loop step is one model call plus one tool call; each framework's durability cost per step is its Temporal
run minus its own loop without Temporal, in the same round. Rounds interleave the frameworks (the order
rotates), so a shared machine's drift hits all alike. The peers run in bench/.venv-peers (created here from
bench/peers-requirements.txt, pinned), each in a subprocess (bench/peer_runner.py) that reports JSON back:
they never become product dependencies. See bench/README.md.

Not a pytest test. Exit status 0 when the product's cost is at most half the best peer's, 1 when not.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # runnable from anywhere: the repo root holds the packages
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.entry import run_bench
from bench.peer_runner import history_stats
from bench.step_overhead import (
    PROMPT_PREFIX,
    Variant,
    bench_responder,
    budget_for,
    build_variant_worker,
    inprocess_run,
    process_cpu_s,
    product_activities,
    product_client,
    prompt_for,
    start_server,
)

TARGET_RATIO = 0.5
"""The issue's target: the product's durability cost per step at most half the best peer's."""

BENCH = Path(__file__).resolve().parent
PEERS_VENV = BENCH / ".venv-peers"
REQUIREMENTS = BENCH / "peers-requirements.txt"
PEERS = ("openai-agents", "pydantic-ai")
STOCK = "product-stock"
"""The product worker with the SDK's sandbox context lookups (before service/sandbox.py): what that cut is worth."""
FRAMEWORKS = ("product", STOCK, *PEERS)


def openai_responder(body: dict[str, Any]):
    """bench_responder for the Responses API: N calculator calls (N from the prompt), then text."""
    from devstack.fake_openai import Reply

    items = body["input"]
    items = [{"role": "user", "content": items}] if isinstance(items, str) else items
    first = next(i for i in items if i.get("role") == "user")["content"]
    text = first if isinstance(first, str) else "".join(part.get("text", "") for part in first)
    steps = int(text.split(PROMPT_PREFIX, 1)[1].split()[0])
    turns = sum(1 for i in items if i.get("type") == "function_call")
    if turns < steps:
        return Reply(tool_calls=[("calculator", {"expression": f"{turns} + 1"})])
    return Reply(text=f"counted to {turns}")


def streaming_fake_anthropic():
    """devstack's FakeAnthropic (TCP_NODELAY) that also answers `stream: true` with the Messages API's SSE.

    pydantic-ai 2.68's Anthropic model always streams; the SSE goes out as one body with a content-length
    (one send per reply, like the JSON replies), which the anthropic client parses.
    """
    from devstack.fake_anthropic import FakeAnthropic

    class StreamingFakeAnthropic(FakeAnthropic):
        def reply_body(self, api: str, body: dict[str, Any], reply) -> dict[str, Any]:
            message = super().reply_body(api, body, reply)
            return {"__sse__": sse_events(message)} if body.get("stream") else message

        def _handler_class(self):
            base = super()._handler_class()

            class Handler(base):  # type: ignore[misc, valid-type]
                def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                    if "__sse__" not in payload:
                        return super()._send(status, payload, headers)
                    data = "".join(
                        f"event: {name}\ndata: {json.dumps(event)}\n\n" for name, event in payload["__sse__"]
                    ).encode()
                    self.send_response(status)
                    self.send_header("content-type", "text/event-stream")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)

            return Handler

    return StreamingFakeAnthropic(responder=bench_responder)


def sse_events(message: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """A Messages API reply as its stream: message_start, start/delta/stop per block, message_delta, message_stop."""
    usage = message["usage"]
    opening = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 0}}
    events: list[tuple[str, dict[str, Any]]] = [("message_start", {"type": "message_start", "message": opening})]
    for index, block in enumerate(message["content"]):
        if block["type"] == "text":
            start, delta = {"type": "text", "text": ""}, {"type": "text_delta", "text": block["text"]}
        else:
            start = {**block, "input": {}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        events += [
            ("content_block_start", {"type": "content_block_start", "index": index, "content_block": start}),
            ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}),
            ("content_block_stop", {"type": "content_block_stop", "index": index}),
        ]
    closing = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    events.append(
        (
            "message_delta",
            {"type": "message_delta", "delta": closing, "usage": {"output_tokens": usage["output_tokens"]}},
        )
    )
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def ensure_peers_venv(log) -> Path:
    """bench/.venv-peers with the pinned peers; reinstalled when peers-requirements.txt changes."""
    python = PEERS_VENV / "bin" / "python"
    stamp = PEERS_VENV / "requirements.sha256"
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text() == digest:
        return python
    log(f"installing the peers into {PEERS_VENV} (pip, {REQUIREMENTS.name})")
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEERS_VENV)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(REQUIREMENTS)], check=True)
    stamp.write_text(digest)
    return python


class Peer:
    """A peer_runner.py subprocess: one JSON command in, one JSON reply out."""

    def __init__(self, framework: str, process: asyncio.subprocess.Process) -> None:
        self.framework = framework
        self.process = process

    @classmethod
    async def start(cls, python: Path, framework: str, address: str) -> Peer:
        process = await asyncio.create_subprocess_exec(
            str(python),
            str(BENCH / "peer_runner.py"),
            framework,
            "--address",
            address,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=open(os.environ["PEERS_LOG_DIR"] + f"/{framework}.log", "w"),
            cwd=str(BENCH),
        )
        peer = cls(framework, process)
        ready = await peer._read(timeout=120)
        if "ready" not in ready:
            raise RuntimeError(f"{framework} did not start: {ready}")
        return peer

    async def _read(self, timeout: float) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        if not line:
            raise RuntimeError(f"{self.framework} exited (code {await self.process.wait()}); see its log")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"{self.framework}: {reply['error']}")
        return reply

    async def run(self, mode: str, steps: int) -> dict[str, Any]:
        assert self.process.stdin is not None
        command = {"mode": mode, "prompt": prompt_for(steps), "steps": steps}
        self.process.stdin.write((json.dumps(command) + "\n").encode())
        await self.process.stdin.drain()
        reply = await self._read(timeout=300)
        if reply["output"] != f"counted to {steps}":
            raise RuntimeError(f"{self.framework} {mode} run did not take {steps} steps: {reply['output']!r}")
        return reply

    async def stop(self) -> None:
        await end_peer_process(self.process, grace=10)


async def end_peer_process(process: asyncio.subprocess.Process, *, grace: float) -> None:
    """Close a peer runner's stdin (it ends there), or kill it after `grace` seconds."""
    if process.returncode is not None:
        return
    assert process.stdin is not None
    process.stdin.close()
    try:
        await asyncio.wait_for(process.wait(), grace)
    except TimeoutError:
        process.kill()
        await process.wait()


class Product:
    """The product worker (worker.build_worker, product client) and its in-process loop, in this process."""

    def __init__(self, client, task_queue: str, call_llm, run_tool) -> None:
        self.client, self.task_queue, self.call_llm, self.run_tool = client, task_queue, call_llm, run_tool

    async def run(self, mode: str, steps: int) -> dict[str, Any]:
        cpu = time.process_time()  # this whole process: the fakes serve both modes alike, so they cancel out
        if mode == "plain":
            timing = await inprocess_run(self.call_llm, self.run_tool, steps)
            return {"wall_s": timing.wall_s, "cpu_s": time.process_time() - cpu}
        payload = {"prompt": prompt_for(steps), "budget": budget_for(steps)}
        t0 = time.perf_counter()
        handle = await self.client.start_workflow(
            "AgentLoopWorkflow", payload, id=f"bench-{uuid.uuid4().hex[:12]}", task_queue=self.task_queue
        )
        result = await handle.result()
        wall = time.perf_counter() - t0
        usage = result["usage"] if isinstance(result, dict) else result.usage.model_dump()
        assert usage["tool_calls"] == steps and usage["llm_calls"] == steps + 1, usage
        cpu = time.process_time() - cpu
        return {"wall_s": wall, "cpu_s": cpu, **history_stats([e async for e in handle.fetch_history_events()])}


async def measure(args: argparse.Namespace, root: Path, log) -> dict[str, Any]:
    """Everything up first, then interleaved rounds: each framework's floor and Temporal run, in rotating order."""
    from config.settings import Settings

    results: dict[str, Any] = {f: {"plain": [], "temporal": [], "cost_ms": [], "server_cpu_ms": []} for f in FRAMEWORKS}
    python = ensure_peers_venv(log)
    server = start_server(root, "fast", fast_config=True, in_memory=False)
    runners: dict[str, Any] = {}
    try:
        await server.wait_serving()
        async with contextlib.AsyncExitStack() as stack:
            client = await product_client(server.address)
            settings = Settings.from_env({**os.environ, "TEMPORAL_TASK_QUEUE": f"bench-peers-{uuid.uuid4().hex[:6]}"})
            await stack.enter_async_context(build_variant_worker(client, settings, Variant("product", "product")))
            runners["product"] = Product(client, settings.task_queue, *product_activities(client, settings))
            if args.stock:
                stock = Settings.from_env({**os.environ, "TEMPORAL_TASK_QUEUE": f"bench-stock-{uuid.uuid4().hex[:6]}"})
                variant = Variant(STOCK, STOCK, stock_sandbox=True)
                await stack.enter_async_context(build_variant_worker(client, stock, variant))
                runners[STOCK] = Product(client, stock.task_queue, *product_activities(client, stock))
            for framework in args.peers:
                try:
                    runners[framework] = await Peer.start(python, framework, server.address)
                except Exception as exc:
                    results[framework]["error"] = str(exc)
                    log(f"{framework}: not measured: {exc}")
            frameworks = [f for f in FRAMEWORKS if f in runners]
            for framework in frameworks:
                for _ in range(args.warmup):
                    await runners[framework].run("plain", 3)
                    await runners[framework].run("temporal", 3)
            for i in range(args.rounds):
                order = frameworks[i % len(frameworks) :] + frameworks[: i % len(frameworks)]
                for framework in order:
                    plain = await runners[framework].run("plain", args.steps)
                    cpu = process_cpu_s(server.process.pid)
                    durable = await runners[framework].run("temporal", args.steps)
                    server_cpu = process_cpu_s(server.process.pid) - cpu
                    r = results[framework]
                    r["plain"].append(plain)
                    r["temporal"].append(durable)
                    r["cost_ms"].append(1000 * (durable["wall_s"] - plain["wall_s"]) / args.steps)
                    r["server_cpu_ms"].append(1000 * server_cpu / args.steps)
                    extra = durable["cpu_s"] - plain["cpu_s"] + server_cpu
                    r.setdefault("extra_cpu_ms", []).append(1000 * extra / args.steps)
                    log(
                        f"  round {i + 1} {framework}: floor {1000 * plain['wall_s'] / args.steps:.1f}, "
                        f"temporal {1000 * durable['wall_s'] / args.steps:.1f} ms/step"
                    )
            for framework in frameworks:
                results[framework]["history"] = await runners[framework].run("temporal", args.history_steps)
    finally:
        for runner in runners.values():
            if isinstance(runner, Peer):
                await runner.stop()
        server.stop()
    return results


def med(values) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")


def spread(values) -> str:
    values = list(values)
    return f"{min(values):.1f}-{max(values):.1f}" if values else "-"


def report(args: argparse.Namespace, results: dict[str, Any], loads: tuple[float, float], elapsed: float) -> float:
    steps = args.steps
    print()
    print(
        f"Durability cost per loop step (1 model call + 1 tool call), zero-latency fakes, one dev server; {steps} steps x "
        f"{args.rounds} interleaved rounds, medians (min-max); load average {loads[0]:.2f} at start, {loads[1]:.2f} at end"
    )
    head = (
        f"{'framework':<15}{'floor ms/step':>16}{'temporal ms/step':>20}{'cost ms/step':>18}{'server CPU':>12}{'extra CPU':>11}"
        f"{'WFT+act+mark/step':>19}{f'hist B/step@{steps}':>16}{f'@{args.history_steps}':>9}"
    )
    print(head)
    print("-" * len(head))
    costs: dict[str, float] = {}
    for framework in FRAMEWORKS:
        r = results[framework]
        if not r["temporal"]:
            print(f"{framework:<15}not measured: {r.get('error', 'not selected')}")
            continue
        floor = [1000 * p["wall_s"] / steps for p in r["plain"]]
        durable = [1000 * t["wall_s"] / steps for t in r["temporal"]]
        costs[framework] = med(r["cost_ms"])
        last = r["temporal"][-1]
        counts = f"{last['workflow_tasks'] / steps:.2f}+{last['activities'] / steps:.2f}+{last['local_activities'] / steps:.2f}"
        hist = r["history"]
        cost = f"{costs[framework]:.1f} ({spread(r['cost_ms'])})"
        print(
            f"{framework:<15}{f'{med(floor):.1f} ({spread(floor)})':>16}{f'{med(durable):.1f} ({spread(durable)})':>20}"
            f"{cost:>18}{med(r['server_cpu_ms']):>12.1f}{med(r['extra_cpu_ms']):>11.1f}{counts:>19}"
            f"{med(t['history_bytes'] / steps for t in r['temporal']):>16,.0f}"
            f"{hist['history_bytes'] / args.history_steps:>9,.0f}"
        )
    peers = {f: c for f, c in costs.items() if f in PEERS}
    print("cost = Temporal run - the same framework's loop without Temporal, same round, / steps; server CPU: dev")
    print(
        "server ms per step in the Temporal run; extra CPU: worker process (Temporal - floor) + server, ms per step; WFT+act+mark: workflow tasks, activities, markers (local activities, patches) per step"
    )
    if "product" not in costs or not peers:
        print(f"ratio: not computed (measured: {sorted(costs)}); bench took {elapsed:.0f} s")
        return float("nan")
    if STOCK in costs:
        paired = [s - p for s, p in zip(results[STOCK]["cost_ms"], results["product"]["cost_ms"], strict=True)]
        print(
            f"skipping the sandbox's context lookups (service/sandbox.py) is worth {costs[STOCK] - costs['product']:.1f} "
            f"ms/step here (median of rounds {med(paired):.1f}, {spread(paired)}); extra CPU "
            f"{med(results[STOCK]['extra_cpu_ms']) - med(results['product']['extra_cpu_ms']):.1f} ms/step"
        )
    best = min(peers, key=lambda f: peers[f])
    if peers[best] <= 0:
        print(
            f"ratio: not computed ({best}'s cost is not positive: too few steps or rounds); bench took {elapsed:.0f} s"
        )
        return float("nan")
    ratio = costs["product"] / peers[best]
    print(
        f"product {costs['product']:.1f} ms/step vs best peer {best} {peers[best]:.1f} ms/step: ratio {ratio:.2f} "
        f"(target <= {TARGET_RATIO}): {'PASS' if ratio <= TARGET_RATIO else 'FAIL'}; bench took {elapsed:.0f} s"
    )
    return ratio


async def main(args: argparse.Namespace) -> int:
    def log(line: str) -> None:
        if args.verbose:
            print(line, flush=True)

    started, load_start = time.perf_counter(), os.getloadavg()[0]
    root = Path(tempfile.mkdtemp(prefix="bench-peers-"))
    (root / "logs").mkdir()
    anthropic = streaming_fake_anthropic().start()
    from devstack.fake_openai import FakeOpenAI

    openai = FakeOpenAI(responder=openai_responder).start()
    os.environ.update(
        {
            "ANTHROPIC_BASE_URL": anthropic.url,
            "ANTHROPIC_API_KEY": "bench-key-not-real",
            "OPENAI_BASE_URL": openai.url,
            "OPENAI_API_KEY": "bench-key-not-real",
            "OPENAI_AGENTS_DISABLE_TRACING": "1",
            "NOTES_DB": str(root / "notes.db"),
            "NOTIFY_OUTBOX": str(root / "outbox.jsonl"),
            "PEERS_LOG_DIR": str(root / "logs"),
        }
    )
    for var in ("LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY", "LANGFUSE_HOST", "LANGFUSE_BASE_URL", "AGENT_MODEL"):
        os.environ.pop(var, None)
    try:
        results = await measure(args, root, log)
    finally:
        anthropic.stop()
        openai.stop()
        if args.keep_logs:
            shutil.copytree(root / "logs", args.keep_logs, dirs_exist_ok=True)
        shutil.rmtree(root, ignore_errors=True)
    ratio = report(args, results, (load_start, os.getloadavg()[0]), time.perf_counter() - started)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    return 0 if ratio <= TARGET_RATIO else 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20, help="loop steps per timed run (default 20)")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds, medians reported (default 5)")
    parser.add_argument("--history-steps", type=int, default=30, help="steps of the run whose history is sized (30)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed 3-step runs per framework and mode (default 1)")
    parser.add_argument("--peers", nargs="*", default=list(PEERS), choices=PEERS, help="peers to measure (default all)")
    parser.add_argument(
        "--no-stock", dest="stock", action="store_false", help="skip the product-stock row (SDK sandbox lookups)"
    )
    parser.add_argument("--json", help="write every run's figures to this file")
    parser.add_argument("--keep-logs", help="copy the peers' stderr logs to this directory")
    parser.add_argument("-v", "--verbose", action="store_true", help="print each run as it finishes")
    args = parser.parse_args(argv)
    if args.steps < 2 or args.rounds < 1 or args.warmup < 0:
        parser.error("--steps must be at least 2, --rounds at least 1, --warmup at least 0")
    return args


if __name__ == "__main__":
    run_bench(main(parse_args()))
