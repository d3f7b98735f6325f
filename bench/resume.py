"""What a crash inside a black box costs: tokens and wall time re-spent after a worker dies at turn k of 10.

    .venv/bin/python bench/resume.py                       # k = 3, 6, 9; both engines; resume off, then on
    .venv/bin/python bench/resume.py --turns 3 9 --engines anthropic --latency 0.5

One `BlackBoxAgentWorkflow` run of an agent that takes 10 turns (9 calculator calls, then its answer) on
a fake model that answers each request after `--latency` seconds (Anthropic Messages or OpenAI Responses,
on 127.0.0.1). At turn k the fake holds its reply, the worker (a real `python worker.py` process) is
SIGKILLed, a fresh worker takes over and the run finishes there. Each crash run is compared with a clean run
of the same engine, in the same bench run:

- requests and tokens re-spent: what the fake served beyond the clean run (input + output tokens, the fake's
  own counting; the reply the crash cut off is never delivered and is not counted);
- retry -> result: wall time from the retried attempt's first model request to the run's result: the turns
  asked again plus the turns left (a clean run's last 10 - k + 1 turns take about that much with resume on);
- kill -> result: wall time from the SIGKILL to the result, dominated by detection (the 10 s heartbeat
  timeout counts from the last heartbeat that got through, so it varies by a second or two between runs).

"Off" is what main did before checkpoints: bench/resume_worker.py replaces the checkpoint restore with one
that finds nothing, so a retry starts at turn 1 (saving stays on, so each turn's own work is the same).
Token streaming is off (`LLM_STREAMING=0`): the same tokens, one response per request.
Starts its own dev server, fake servers and workers; stops every process it started, by pid. Not a pytest test.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if __name__ == "__main__":  # runnable from anywhere: the repo root holds the packages
    sys.path.insert(0, str(ROOT))

TURNS = 10
CRASH_DELAY = 45.0
"""How long the fake holds the reply of the turn the crash cuts off (the worker is dead well before)."""
MODELS = {"anthropic": "anthropic:claude-sonnet-5-5", "openai": "openai:gpt-5"}
AGENTS = textwrap.dedent(
    """
    [agents.stepper]
    description = "Takes ten turns"
    instructions = "Compute each step with the calculator, then answer."
    tools = ["calculator"]
    read_only = true
    max_turns = 12
    """
)


class Script:
    """Answers by turn number (replies so far + 1); holds the reply of turn `crash_at` once."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.crash_at: int | None = None
        self.lock = threading.Lock()
        self.served = 0
        self.tokens = 0
        self.killed_at: float | None = None
        self.retried_at: float | None = None
        """When the first request after the kill arrived: the retried attempt's start."""

    def reply(self, turn: int) -> Any:
        from devstack.scripted_http import Reply

        with self.lock:
            crash = self.crash_at == turn
            if crash:
                self.crash_at = None
            elif self.killed_at is not None and self.retried_at is None:
                self.retried_at = time.monotonic()
        delay = CRASH_DELAY if crash else self.latency
        if turn < TURNS:
            return Reply(tool_calls=[("calculator", {"expression": f"{turn} * 2"})], delay=delay)
        return Reply(text=f"done after {turn} turns", delay=delay)

    def count(self, reply: Any, usage: dict[str, Any]) -> None:
        if reply.delay >= CRASH_DELAY:  # cut off by the crash: never delivered
            return
        with self.lock:
            self.served += 1
            self.tokens += int(usage.get("input_tokens") or 0) + int(usage.get("output_tokens") or 0)

    def reset(self) -> tuple[int, int]:
        with self.lock:
            served, tokens, self.served, self.tokens = self.served, self.tokens, 0, 0
            self.killed_at = self.retried_at = None
        return served, tokens


def fakes(script: Script) -> tuple[Any, Any]:
    """The fake Anthropic and OpenAI servers answering from `script` and counting what they deliver."""
    from devstack.fake_anthropic import FakeAnthropic
    from devstack.fake_openai import FakeOpenAI

    def claude_turn(body: dict[str, Any]) -> Any:
        return script.reply(1 + sum(1 for m in body.get("messages", []) if m.get("role") == "assistant"))

    def openai_turn(body: dict[str, Any]) -> Any:
        items = body.get("input") if isinstance(body.get("input"), list) else []
        return script.reply(1 + sum(1 for i in items if isinstance(i, dict) and i.get("type") == "function_call"))

    class CountedAnthropic(FakeAnthropic):
        def reply_body(self, api: str, body: dict[str, Any], reply: Any) -> dict[str, Any]:
            answer = super().reply_body(api, body, reply)
            script.count(reply, answer.get("usage") or {})
            return answer

    class CountedOpenAI(FakeOpenAI):
        def reply_body(self, api: str, body: dict[str, Any], reply: Any) -> dict[str, Any]:
            answer = super().reply_body(api, body, reply)
            script.count(reply, answer.get("usage") or {})
            return answer

    return CountedAnthropic(responder=claude_turn).start(), CountedOpenAI(responder=openai_turn).start()


class WorkerProc:
    """bench/resume_worker.py (worker.py, resume optionally off) with the given environment; its log in a file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        self.log_path.write_text("")
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "resume_worker.py")],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=open(log_path, "ab"),
            stderr=subprocess.STDOUT,
        )

    def ready(self, timeout: float = 60.0) -> WorkerProc:
        deadline = time.monotonic() + timeout
        while "worker polling" not in self.log_path.read_text(errors="replace"):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker did not start:\n{self.log_path.read_text()[-3000:]}")
            time.sleep(0.05)
        return self

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()


@dataclass
class Row:
    engine: str
    mode: str
    k: int | None
    served: int
    tokens: int
    seconds: float
    """Clean run: start -> result; crash run: kill -> result."""
    after_retry: float = 0.0
    """Crash run: the retried attempt's first request -> result (the work done after the crash)."""


async def one_run(client: Any, task_queue: str, model: str) -> Any:
    """Start the ten-turn black box; its handle."""
    return await client.start_workflow(
        "BlackBoxAgentWorkflow",
        {"agent": "stepper", "prompt": "Take ten turns.", "model": model},
        id=f"bench-resume-{uuid.uuid4().hex[:8]}",
        task_queue=task_queue,
    )


async def bench(args: argparse.Namespace, tmp: Path) -> int:
    from config.settings import Settings
    from devstack.dev_server import free_port, start_dev_server
    from service.connect import connect

    started: list[Any] = []
    script = Script(args.latency)
    rows: list[Row] = []
    try:
        server = start_dev_server(
            port=free_port(), ui_port=None, db_file=str(tmp / "dev.db"), log_path=str(tmp / "dev-server.log")
        )
        started.append(server)
        claude, openai = fakes(script)
        started += [claude, openai]
        (tmp / "agents.toml").write_text(AGENTS)
        task_queue = f"bench-resume-{uuid.uuid4().hex[:8]}"
        env = {
            "TEMPORAL_ADDRESS": server.address,
            "TEMPORAL_TASK_QUEUE": task_queue,
            "ANTHROPIC_BASE_URL": claude.url,
            "ANTHROPIC_API_KEY": "bench-key-not-real",
            "OPENAI_BASE_URL": openai.url,
            "OPENAI_API_KEY": "bench-key-not-real",
            "AGENTS_FILE": str(tmp / "agents.toml"),
            "BLOB_STORE_DIR": str(tmp / "blobs"),
            "NOTES_DB": str(tmp / "notes.db"),
            "LLM_STREAMING": "0",
            "ARCHIVE_RUNS": "0",
            "LOG_LEVEL": "INFO",
        }
        for var in ("LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY"):
            os.environ.pop(var, None)
        os.environ.update({k: env[k] for k in ("BLOB_STORE_DIR",)})  # the client's codec reads the same store
        client = await connect(Settings.from_env(), target_host=server.address)
        count = 0
        for mode in ("off", "on"):
            mode_env = {**env, "BENCH_RESUME_OFF": "1" if mode == "off" else "0"}

            def spawn(mode_env: dict[str, str] = mode_env) -> WorkerProc:
                nonlocal count
                count += 1
                proc = WorkerProc(mode_env, tmp / f"worker-{count}.log")
                started.append(proc)
                return proc.ready()

            worker = spawn()
            for engine in args.engines:
                model = MODELS[engine]
                if mode == "on":  # the clean run, for the baseline
                    script.reset()
                    began = time.monotonic()
                    handle = await one_run(client, task_queue, model)
                    result = await handle.result()
                    seconds = time.monotonic() - began
                    served, tokens = script.reset()
                    assert result["status"] == "completed", result
                    rows.append(Row(engine, "clean", None, served, tokens, seconds))
                    print(f"{engine} clean: {served} requests, {tokens} tokens, {seconds:.2f} s", flush=True)
                for k in args.turns:
                    script.reset()
                    script.crash_at = k
                    handle = await one_run(client, task_queue, model)
                    while script.crash_at is not None:  # turn k's request has arrived: its reply is held
                        await asyncio.sleep(0.02)
                    await asyncio.sleep(0.2)  # the request is in flight, nothing after it has happened
                    worker.kill()
                    script.killed_at = killed = time.monotonic()
                    worker = spawn()
                    result = await handle.result()
                    done = time.monotonic()
                    retried = script.retried_at or done
                    served, tokens = script.reset()
                    assert result["status"] == "completed", result
                    rows.append(Row(engine, mode, k, served, tokens, done - killed, done - retried))
                    print(
                        f"{engine} resume {mode}, crash at turn {k}: {served} requests, {tokens} tokens, "
                        f"kill -> result {done - killed:.2f} s, retry -> result {done - retried:.2f} s",
                        flush=True,
                    )
            worker.stop()
        report(rows, args)
        return 0
    finally:
        for thing in reversed(started):
            thing.stop()


def report(rows: list[Row], args: argparse.Namespace) -> None:
    """The markdown table bench/README.md shows."""
    clean = {r.engine: r for r in rows if r.mode == "clean"}
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"\n{datetime.date.today()}, load average at the end {load}, {os.cpu_count()} cores, "
        f"model latency {args.latency:g} s per turn"
    )
    print(
        "| engine | crash at turn | resume | requests re-asked | tokens re-spent | retry -> result | kill -> result |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        if r.mode == "clean":
            continue
        base = clean[r.engine]
        print(
            f"| {r.engine} | {r.k} of {TURNS} | {r.mode} | {r.served - base.served} | "
            f"{r.tokens - base.tokens} | {r.after_retry:.2f} s | {r.seconds:.2f} s |"
        )
    for engine, r in clean.items():
        print(f"clean run, {engine}: {r.served} requests, {r.tokens} tokens, {r.seconds:.2f} s start -> result")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, nargs="+", default=[3, 6, 9], help="turns to crash at (1-10)")
    parser.add_argument("--engines", nargs="+", choices=sorted(MODELS), default=["anthropic", "openai"])
    parser.add_argument("--latency", type=float, default=0.3, help="seconds the fake takes per reply (0.3)")
    args = parser.parse_args()
    if any(not 1 <= k <= TURNS for k in args.turns):
        parser.error(f"--turns must be within 1..{TURNS}")
    tmp = Path(tempfile.mkdtemp(prefix="bench-resume-"))
    try:
        return asyncio.run(bench(args, tmp))
    except (RuntimeError, TimeoutError, OSError, AssertionError) as exc:
        print(f"error: {exc}\n(logs were in {tmp})", file=sys.stderr)
        return 2
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    code = main()
    from config.cli import exit_now

    exit_now(code)  # flushed, teardown skipped (sdk-python#300)
