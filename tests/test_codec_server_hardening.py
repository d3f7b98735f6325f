"""The codec server refuses before it reads: token first, a bounded Content-Length, socket timeouts, a bounded pool.

The server runs as `python -m payloads.codec_server` in its own process, so its memory (VmRSS) and threads
can be read from /proc while clients misbehave over raw sockets on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from devstack.dev_server import free_port
from tests.helpers import ROOT

TOKEN = "hardening-token-123"
MAX_BODY = 1024 * 1024
BODY = json.dumps({"payloads": [{"metadata": {"encoding": "anNvbi9wbGFpbg=="}, "data": "IjEi"}]}).encode()


def proc_status(pid: int, field: str) -> int:
    """A number from /proc/<pid>/status (VmRSS in kB, Threads)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The codec server process: 1 MiB body limit, 1 s socket timeout, 2 threads."""
    port = free_port()
    env = {
        **os.environ,
        "CODEC_SERVER_TOKEN": TOKEN,
        "CODEC_SERVER_MAX_BODY_BYTES": str(MAX_BODY),
        "CODEC_SERVER_TIMEOUT_SECONDS": "1",
        "CODEC_SERVER_THREADS": "2",
        "BLOB_STORE_DIR": str(tmp_path_factory.mktemp("codec-blobs")),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "payloads.codec_server", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            break
        except OSError:
            assert proc.poll() is None and time.monotonic() < deadline, "codec server did not start"
            time.sleep(0.05)
    yield proc, port
    proc.terminate()
    proc.wait(10)


def request_head(headers: dict[str, str], path: str = "/decode") -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def status_of(sock: socket.socket, timeout: float = 5) -> tuple[int, bytes]:
    """The status code and whatever else arrived, up to the connection closing (or `timeout`)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data or len(data) < data.find(b"\r\n\r\n") + 4 + _length(data):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return int(data.split(b" ", 2)[1]), data


def _length(data: bytes) -> int:
    for line in data.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return int(line.split(b":")[1])
    return 0


def send(port: int, head: bytes, body: bytes = b"", timeout: float = 5) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), 5) as sock:
        sock.sendall(head + body)
        return status_of(sock, timeout)


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_a_good_request_is_served(server):
    _, port = server
    status, data = send(port, request_head({**AUTH, "Content-Length": str(len(BODY))}), BODY)
    assert status == 200 and b'"payloads"' in data


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Content-Length": str(300 * 1024 * 1024)}, 401),  # no token: 401 whatever the length says
        ({"Content-Length": "-1"}, 401),
        ({"Authorization": "Bearer wrong", "Content-Length": "10"}, 403),
        ({**AUTH, "Content-Length": str(MAX_BODY + 1)}, 413),
        ({**AUTH, "Content-Length": "-1"}, 400),
        ({**AUTH, "Content-Length": "ten"}, 400),
        ({**AUTH}, 411),
        ({**AUTH, "Transfer-Encoding": "chunked"}, 411),
    ],
)
def test_refused_before_the_body_is_read(server, headers, expected):
    """The answer comes back while the client has sent only headers, and the connection closes."""
    _, port = server
    with socket.create_connection(("127.0.0.1", port), 5) as sock:
        sock.sendall(request_head(headers))
        status, data = status_of(sock)
        assert status == expected, data
        assert b"connection: close" in data.lower()
        assert sock.recv(1) == b""  # closed: nothing of a body will ever be read


def test_memory_stays_flat_under_oversized_and_unauthenticated_floods(server):
    proc, port = server
    before = proc_status(proc.pid, "VmRSS")
    chunk = b"x" * (1024 * 1024)
    for headers in [{"Content-Length": str(300 * 1024 * 1024)}, {"Content-Length": "-1"}] * 5 + [
        {**AUTH, "Content-Length": str(300 * 1024 * 1024)}
    ] * 5:
        with socket.create_connection(("127.0.0.1", port), 5) as sock:
            sock.sendall(request_head(headers))
            try:
                for _ in range(30):  # push 30 MiB unless the server has already hung up
                    sock.sendall(chunk)
            except OSError:
                pass
    growth_kb = proc_status(proc.pid, "VmRSS") - before
    # 15 clients offering 300 MiB each (4.5 GiB claimed, ~450 MiB pushed): the server kept under 20 MiB of it.
    assert growth_kb < 20 * 1024, f"RSS grew by {growth_kb} kB"
    assert send(port, request_head({**AUTH, "Content-Length": str(len(BODY))}), BODY)[0] == 200


def test_slow_clients_are_disconnected_and_the_pool_stays_bounded(server):
    proc, port = server
    threads_before = proc_status(proc.pid, "Threads")
    slow = []
    for i in range(12):  # half stall inside their headers, half inside their body
        sock = socket.create_connection(("127.0.0.1", port), 5)
        head = request_head({**AUTH, "Content-Length": "100"})
        sock.sendall(head[:20] if i % 2 else head + b"0123456789")
        slow.append(sock)
    time.sleep(0.5)
    assert proc_status(proc.pid, "Threads") <= threads_before + 2  # CODEC_SERVER_THREADS=2, however many wait
    started = time.monotonic()
    # With the socket timeout of 1 s, 12 stalled clients on 2 threads are all gone within about 6 s,
    # and a well-behaved request is served after them.
    status, _ = send(port, request_head({**AUTH, "Content-Length": str(len(BODY))}), BODY, timeout=20)
    waited = time.monotonic() - started
    assert status == 200 and waited < 12, waited
    for sock in slow:
        sock.settimeout(5)
        try:
            leftover = sock.recv(65536)
        except OSError:
            leftover = b""
        assert leftover == b"" or b"408" in leftover.split(b"\r\n")[0] or leftover.startswith(b"HTTP/1.1 4")
        sock.close()
