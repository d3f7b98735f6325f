"""Worker processes for tests, forked from a parent that has already imported the product.

A `python worker.py` spends about 4.5 s of CPU importing anthropic, the Agents SDK, mcp and temporalio before it
runs a line of its own, and the suite starts some 70 of them (to SIGKILL them, restart them, run several at
once): a quarter of the suite's CPU on a 2-core machine. This server imports those modules once per pytest
process and forks a child per start. Each child is still its own OS process, running the script as `__main__`
(`runpy.run_path`) with its own argv, environment, working directory and log: tests signal it by pid exactly
as before, and its exit code comes back as `Popen` would give it (negative: the signal that ended it).

What a fork does not reproduce, the tests that need it do not use it: the container and wheel tests start the
real entry points, and a worker's start-up errors are tested with `subprocess.run` of `python worker.py`.
`TEST_WORKERS_EXEC=1` turns it off (every worker then starts by exec, as before).

The server runs no thread and no event loop of its own before it forks (checked at start), so each child starts
as clean as a fresh interpreter past its imports.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import runpy
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

PRELOAD = (
    "worker",
    "service.plugin",
    "service.activities",
    "tools.loader",
    # The workflow modules (`service.plugin.workflows` imports them when a worker is built): 0.15 s of a forked
    # worker's 0.5 s of CPU up to its first poll.
    "workflows.unversioned.agent_loop",
    "workflows.unversioned.black_box",
    "workflows.unversioned.hybrid",
    "workflows.spend_ledger",
)
"""What every worker process imports: the heavy part of its start."""


def enabled() -> bool:
    """Fork test workers unless TEST_WORKERS_EXEC=1."""
    return os.environ.get("TEST_WORKERS_EXEC", "") != "1"


# --- the client side: one server per pytest process, and a Popen-like handle per child ----------------------


class ForkedProcess:
    """What tests use of `subprocess.Popen`: pid, poll, wait, send_signal, kill, terminate, returncode."""

    def __init__(self, conn: socket.socket, pid: int, args: list[str]) -> None:
        self._conn = conn
        self.pid = pid
        self.args = args
        self.returncode: int | None = None

    def _read_exit(self, timeout: float | None) -> int | None:
        if self.returncode is None:
            self._conn.settimeout(timeout)
            try:
                line = self._conn.recv(64)
            except (TimeoutError, BlockingIOError):
                return None
            # Nothing to read: the server is gone, and it took its children with it (SIGKILL).
            self.returncode = int(line.decode().strip()) if line.strip() else -signal.SIGKILL
            self._conn.close()
        return self.returncode

    def poll(self) -> int | None:
        return self._read_exit(0.0)

    def wait(self, timeout: float | None = None) -> int:
        code = self._read_exit(timeout)
        if code is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
        return code

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:  # as Popen: never signal a pid that may have been reused
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)


class ForkServer:
    """The server process, started on first use and stopped when the pytest process exits."""

    def __init__(self) -> None:
        self.socket_path = os.path.join(tempfile.mkdtemp(prefix="forkserver-"), "sock")
        self.proc = subprocess.Popen(
            [sys.executable, __file__, self.socket_path],
            cwd=ROOT,
            stdin=subprocess.PIPE,  # its end of life: the server exits when this closes
            stdout=subprocess.DEVNULL,
            stderr=open(self.socket_path + ".log", "ab"),
        )
        line = self._ready()
        if line != "ready":
            raise RuntimeError(f"the fork server did not start: {line!r}; see {self.socket_path}.log")

    def _ready(self) -> str:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return f"exited {self.proc.returncode}: {Path(self.socket_path + '.log').read_text()[-2000:]}"
            if os.path.exists(self.socket_path + ".ready"):
                return Path(self.socket_path + ".ready").read_text()
            time.sleep(0.05)
        return "timed out"

    def spawn(self, args: list[str], env: dict[str, str], cwd: Path, log_path: Path) -> ForkedProcess:
        """Fork a child that runs `args` ([python, script, *argv]) as `python script *argv` would."""
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(self.socket_path)
        request = {"argv": args[1:], "env": env, "cwd": str(cwd), "log": str(log_path)}
        conn.sendall(json.dumps(request).encode() + b"\n")
        reply = b""
        while not reply.endswith(b"\n"):
            chunk = conn.recv(64)
            if not chunk:
                raise RuntimeError(f"the fork server refused {args}: see {self.socket_path}.log")
            reply += chunk
        return ForkedProcess(conn, int(reply), args)

    def stop(self) -> None:
        if self.proc.poll() is None and self.proc.stdin is not None:
            self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


_server: ForkServer | None = None
_lock = threading.Lock()


def fork_server() -> ForkServer:
    """This pytest process's fork server."""
    global _server
    with _lock:
        if _server is None or _server.proc.poll() is not None:
            _server = ForkServer()
            atexit.register(_server.stop)
        return _server


def forkable(command: list[str]) -> bool:
    """Whether `command` is `python <a .py file>` (what the server can run), and forking is on."""
    return enabled() and len(command) >= 2 and command[0] == sys.executable and command[1].endswith(".py")


# --- the server side --------------------------------------------------------------------------------------


def python_path(env: dict[str, str]) -> list[str]:
    """The folders `PYTHONPATH` adds to a fresh interpreter's `sys.path` (after the script's own)."""
    return [os.path.abspath(p) for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]


def _run_child(request: dict[str, Any]) -> None:
    """In the forked child: become `python script *argv` and never return."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGTERM, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        os.setpgid(0, 0)  # its own group, as a fresh process would not share the server's
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        log = os.open(request["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        script = os.path.abspath(request["argv"][0])
        sys.argv = [script, *request["argv"][1:]]
        sys.path[:] = [os.path.dirname(script), *python_path(request["env"]), *request["base_path"]]
        if request["env"].get("PYTHONUNBUFFERED"):
            for stream in (sys.stdout, sys.stderr):
                stream.reconfigure(write_through=True)  # type: ignore[union-attr]
        try:
            runpy.run_path(script, run_name="__main__")
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if not isinstance(exc.code, int | None):
                print(exc.code, file=sys.stderr)
        except BaseException:
            traceback.print_exc()
            code = 1
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
    finally:
        os._exit(code)


def serve(socket_path: str) -> None:
    """Import the product, then fork a child per request until stdin closes; report each child's exit code."""
    own = set(python_path(dict(os.environ)))
    base_path = [p for p in sys.path[1:] if p not in own]  # what every interpreter here has, PYTHONPATH aside
    sys.path[0] = str(ROOT)
    for module in PRELOAD:
        __import__(module)
    if threading.active_count() != 1:
        raise SystemExit(f"forkserver: importing {PRELOAD} started threads; forking would copy them half-alive")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(socket_path)
    listener.listen(64)
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: dict[int, socket.socket] = {}
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, "accept")
    selector.register(wake_read, selectors.EVENT_READ, "reap")
    selector.register(sys.stdin, selectors.EVENT_READ, "stdin")
    # Written then renamed: the parent polls for the name and must never read a file created but not yet written.
    Path(socket_path + ".ready.tmp").write_text("ready")
    os.replace(socket_path + ".ready.tmp", socket_path + ".ready")
    while True:
        for key, _ in selector.select():
            if key.data == "stdin":
                if not os.read(sys.stdin.fileno(), 1024):
                    for pid in children:
                        with contextlib.suppress(OSError):  # a child or a client already gone
                            os.killpg(pid, signal.SIGKILL)
                    return
            elif key.data == "reap":
                with contextlib.suppress(OSError):  # a child or a client already gone
                    os.read(wake_read, 4096)
                _reap(children)
            else:
                conn, _ = listener.accept()
                _fork_for(conn, listener, selector, children, base_path)


def _fork_for(
    conn: socket.socket,
    listener: socket.socket,
    selector: selectors.BaseSelector,
    children: dict[int, socket.socket],
    base_path: list[str],
) -> None:
    reader = conn.makefile("rb")
    request = json.loads(reader.readline())
    request["base_path"] = base_path
    reader.close()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        selector.close()
        listener.close()
        for held in (conn, *children.values()):  # its own client's and its siblings': the server's, not its
            held.close()
        _run_child(request)
    children[pid] = conn
    conn.sendall(f"{pid}\n".encode())


def _reap(children: dict[int, socket.socket]) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        conn = children.pop(pid, None)
        if conn is not None:
            with contextlib.suppress(OSError):  # a child or a client already gone
                conn.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())
            conn.close()


if __name__ == "__main__":
    serve(sys.argv[1])
