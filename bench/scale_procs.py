"""The processes of bench/scale.py: the fake model, the product's `worker.py`, the peers' workers, and /proc readings."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.peers import end_peer_process
from bench.step_overhead import process_cpu_s
from bench.waiting import WorkerProc, rss_kib

BENCH = Path(__file__).resolve().parent


class FakeModel:
    """bench/scale_fake.py in a subprocess (its CPU is its own, not the bench's): URLs, and its call log."""

    def __init__(self, root: Path) -> None:
        self.log_path = root / "model-calls.jsonl"
        self.proc: subprocess.Popen[str] | None = None
        self.urls: dict[str, str] = {}

    def start(self) -> FakeModel:
        self.proc = subprocess.Popen(
            [sys.executable, str(BENCH / "scale_fake.py"), "--log", str(self.log_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.urls = json.loads(self.proc.stdout.readline())
        return self

    def calls(self) -> dict[str, list[tuple[int, float, float]]]:
        """tag -> [(turn, start, end)] of every model call logged so far (retried attempts too), in start order."""
        by_tag: dict[str, list[tuple[int, float, float]]] = {}
        if self.log_path.exists():
            for line in self.log_path.read_text().splitlines():
                call = json.loads(line)
                by_tag.setdefault(call["tag"], []).append((call["turn"], call["start"], call["end"]))
        return {tag: sorted(spans, key=lambda c: c[1]) for tag, spans in by_tag.items()}

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class ProductWorker:
    """`python worker.py` with the shipped settings (only addresses, keys and file paths set), one process."""

    def __init__(
        self, root: Path, address: str, model_url: str, task_queue: str, extra: dict[str, str], code: Path | None = None
    ) -> None:
        self.env = {
            "TEMPORAL_ADDRESS": address,
            "TEMPORAL_TASK_QUEUE": task_queue,
            "ANTHROPIC_BASE_URL": model_url,
            "ANTHROPIC_API_KEY": "bench-key-not-real",
            "NOTES_DB": str(root / "notes.db"),
            "NOTIFY_OUTBOX": str(root / "outbox.jsonl"),
            "BLOB_STORE_DIR": str(root / "blobs"),
            "LOG_LEVEL": "WARNING",
            **extra,
        }
        self.task_queue = task_queue
        self.proc = WorkerProc(
            {**self.env, "LOG_LEVEL": "INFO"}, root / f"worker-{task_queue}.log", code or BENCH.parent
        )

    @property
    def pid(self) -> int:
        assert self.proc.proc is not None
        return self.proc.proc.pid

    async def start(self) -> ProductWorker:
        await asyncio.to_thread(self.proc.start, 120.0)
        return self

    async def stop(self) -> None:
        await asyncio.to_thread(self.proc.stop)


class PeerWorker:
    """bench/peer_runner.py --serve in bench/.venv-peers: the peer's worker alone in its process."""

    def __init__(self, python: Path, framework: str, address: str, log_dir: Path) -> None:
        self.python, self.framework, self.address, self.log_dir = python, framework, address, log_dir
        self.process: asyncio.subprocess.Process | None = None
        self.ready: dict[str, Any] = {}

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def task_queue(self) -> str:
        return str(self.ready["task_queue"])

    @property
    def workflow(self) -> str:
        return str(self.ready["workflow"])

    async def start(self) -> PeerWorker:
        self.process = await asyncio.create_subprocess_exec(
            str(self.python),
            str(BENCH / "peer_runner.py"),
            self.framework,
            "--address",
            self.address,
            "--serve",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=open(self.log_dir / f"{self.framework}.log", "w"),
            cwd=str(BENCH),
        )
        assert self.process.stdout is not None
        line = await asyncio.wait_for(self.process.stdout.readline(), 120)
        self.ready = json.loads(line) if line else {"error": f"exited {await self.process.wait()}"}
        if "ready" not in self.ready:
            raise RuntimeError(f"{self.framework} did not start: {self.ready}")
        return self

    async def stop(self) -> None:
        if self.process is not None:
            await end_peer_process(self.process, grace=15)


class PySpy:
    """`py-spy record` of a process while a round runs (collapsed stacks, 50 Hz, non-blocking: light on the worker)."""

    def __init__(self, pid: int, output: str | None) -> None:
        self.pid, self.output = pid, output
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> PySpy:
        binary = os.environ.get("PY_SPY") or shutil.which("py-spy")
        if self.output and binary:
            command = [binary, "record", "--pid", str(self.pid), "--format", "raw", "--output", self.output]
            command += ["--rate", "50", "--nonblocking"]
            self.proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        elif self.output:
            print("py-spy not found (PATH or PY_SPY): no profile", flush=True)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            self.proc.wait(30)


def cpu_s(pid: int) -> float:
    """utime + stime of a process, all its threads."""
    return process_cpu_s(pid)


def rss_mib(pid: int) -> float:
    return rss_kib(pid) / 1024


class RssSampler:
    """The highest VmRSS of a process while a round runs (sampled every 0.25 s)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_mib = rss_mib(pid)
        self._task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        while True:
            self.peak_mib = max(self.peak_mib, rss_mib(self.pid))
            await asyncio.sleep(0.25)

    def __enter__(self) -> RssSampler:
        self._task = asyncio.get_running_loop().create_task(self._sample())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        self.peak_mib = max(self.peak_mib, rss_mib(self.pid))


def load_average() -> float:
    return os.getloadavg()[0]


def now() -> float:
    return time.time()
