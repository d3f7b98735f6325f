"""Test plumbing for the gateway: a tokens file, the app on uvicorn over real HTTP, a webhook receiver."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import hashlib
import json
import threading
import time
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from config.gateway import GatewaySettings
from config.settings import Settings
from devstack.dev_server import free_port
from gateway.__main__ import uvicorn_config
from gateway.app import build_app
from gateway.tokens import load_tokens

LINK_SECRET = "test-link-secret-0123456789abcdef0123456789"
TOKENS = {
    "alice": ("alice-token-1", ["starter", "approver"]),
    "bob": ("bob-token-2", ["approver"]),
    "carol": ("carol-token-3", ["approver"]),
    "reader": ("reader-token-4", []),
    "starter": ("starter-token-5", ["starter"]),
}


def auth(identity: str) -> dict[str, str]:
    """The Authorization header of `identity`'s token."""
    return {"Authorization": f"Bearer {TOKENS[identity][0]}"}


def write_tokens(path: Path) -> Path:
    """A GATEWAY_TOKENS file with every identity of TOKENS (only digests are stored)."""
    lines = []
    for identity, (token, roles) in TOKENS.items():
        lines += [
            f"[tokens.{identity}]",
            f'sha256 = "{hashlib.sha256(token.encode()).hexdigest()}"',
            f"roles = {json.dumps(roles)}",
            "",
        ]
    path.write_text("\n".join(lines))
    return path


def with_gateway(settings: Settings, port: int, webhook_url: str = "") -> Settings:
    """`settings` with a link secret, the gateway's public URL on `port`, and optionally the approval webhook."""
    gateway = GatewaySettings(
        host="127.0.0.1",
        port=port,
        link_secret=LINK_SECRET,
        public_url=f"http://127.0.0.1:{port}",
        webhook_url=webhook_url,
    )
    return dataclasses.replace(settings, gateway=gateway)


@asynccontextmanager
async def running_gateway(client: Any, settings: Settings, tokens_file: Path):
    """The gateway app on uvicorn at settings.gateway.port, configured as `python -m gateway` does; yields its URL."""
    app = build_app(client, settings, load_tokens(str(tokens_file)))
    server = uvicorn.Server(uvicorn_config(app, settings.gateway, "warning"))
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign]  # pytest keeps its own signals
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{settings.gateway.port}"
    finally:
        server.should_exit = True
        await task


class WebhookSink:
    """An HTTP receiver on 127.0.0.1 that records every POST; `fail_first` answers 503 that many times first.

    Like a careful receiver, it keeps each Idempotency-Key once (`delivered`), however often it is posted.
    `hold_first` makes the first POST wait that many seconds before answering (a worker may die meanwhile).
    """

    def __init__(self, fail_first: int = 0, hold_first: float = 0.0) -> None:
        self.posts: list[dict[str, Any]] = []
        self.delivered: dict[str, dict[str, Any]] = {}
        self.fail_first = fail_first
        self.hold_first = hold_first
        self._lock = threading.Lock()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                key = self.headers.get("Idempotency-Key", "")
                with sink._lock:
                    sink.posts.append({"key": key, "body": body, "at": time.monotonic()})
                    n = len(sink.posts)
                    failing = n <= sink.fail_first
                    if not failing:
                        sink.delivered.setdefault(key, body)
                if n == 1 and sink.hold_first:
                    time.sleep(sink.hold_first)
                self.send_response(503 if failing else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        # poll_interval: `shutdown` waits for the loop to look (0.5 s by default), at every test's end.
        serve = functools.partial(self._server.serve_forever, poll_interval=0.02)
        self._thread = threading.Thread(target=serve, daemon=True)

    @property
    def url(self) -> str:
        """Where to point APPROVAL_WEBHOOK_URL."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks/approvals"

    def __enter__(self) -> WebhookSink:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()


def gateway_client(base_url: str) -> httpx.AsyncClient:
    """An HTTP client for the gateway (no proxies from the environment)."""
    return httpx.AsyncClient(base_url=base_url, timeout=30, trust_env=False)


async def close_runs(*handles: Any) -> None:
    """Cancel runs a test leaves waiting and wait until they close, so no suspended run is left in a worker's cache
    (garbage-collecting a cached run's coroutine later, in another test, is noisy and has tripped CPython's parser)."""
    from temporalio.client import WorkflowExecutionStatus

    from tests.helpers import eventually

    for handle in handles:
        await handle.cancel()

    async def closed() -> bool:
        for handle in handles:
            if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                return False
        return True

    await eventually(closed, 30)
