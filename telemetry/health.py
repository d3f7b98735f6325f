"""`GET /healthz` for orchestrators: 200 while the worker polls, 503 while it starts or drains.

A few lines of asyncio instead of a web framework: the endpoint answers one question and must not
add dependencies to the image. Run as a module it is the container's health probe:

    python -m telemetry.health     # exit 0 when the local worker answers 200, else 1
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import urllib.error
import urllib.request
from collections.abc import Callable

from config.settings import Settings
from models.errors import ConfigError

log = logging.getLogger("worker.health")

_REASONS = {200: "OK", 404: "Not Found", 405: "Method Not Allowed", 503: "Service Unavailable"}


class Health:
    """The worker's state as the endpoint reports it: starting → serving → stopping."""

    def __init__(self) -> None:
        self.state = "starting"
        self._polling: Callable[[], bool] = lambda: False

    def serving(self, polling: Callable[[], bool]) -> None:
        """The worker is started; `polling` says whether it still runs (false after a fatal error)."""
        self.state = "serving"
        self._polling = polling

    def stopping(self) -> None:
        """Shutdown began: stop sending new work here, in-flight activities are finishing."""
        self.state = "stopping"

    def status(self) -> tuple[int, dict[str, str]]:
        """HTTP status and body for `GET /healthz`."""
        if self.state == "serving" and not self._polling():
            return 503, {"status": "not_polling"}
        return (200 if self.state == "serving" else 503), {"status": self.state}


class HealthServer:
    """A tiny HTTP/1.1 server for one route; `port=0` means off, so every method is then a no-op."""

    def __init__(self, health: Health, host: str, port: int) -> None:
        self.health = health
        self.host = host
        self.port = port
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> HealthServer:
        """Listen, if a port was configured."""
        if self.port:
            try:
                self._server = await asyncio.start_server(self._handle, self.host, self.port)
            except OSError as exc:
                raise ConfigError(
                    f"WORKER_HEALTH_PORT: cannot listen on {self.host}:{self.port} ({exc.strerror})"
                ) from None
            log.info("health endpoint on http://%s:%d/healthz", self.host, self.port)
        return self

    async def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            # Only the request line matters; headers are read and dropped so the client sees a clean close.
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5)
            method, path = (head.split(b"\r\n", 1)[0].decode("latin-1").split(" ") + ["", ""])[:2]
            if path.split("?", 1)[0] != "/healthz":
                status, body = 404, {"error": "only /healthz is served here"}
            elif method not in ("GET", "HEAD"):
                status, body = 405, {"error": "use GET"}
            else:
                status, body = self.health.status()
            payload = json.dumps(body).encode()
            writer.write(
                f"HTTP/1.1 {status} {_REASONS[status]}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\nConnection: close\r\n\r\n".encode()
                + (payload if method != "HEAD" else b"")
            )
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass  # a port scanner or a half-open probe: nothing to answer
        finally:
            writer.close()


def probe(port: int, host: str = "127.0.0.1", timeout: float = 3.0) -> int:
    """GET /healthz on the local worker; the HTTP status, or 0 when nothing answers."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/healthz", timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


def main() -> int:
    """Container health probe: exit 0 on 200, 1 otherwise (and 1 when the endpoint is off)."""
    try:
        health = Settings.from_env().health
    except ConfigError as exc:
        print(f"health probe: configuration error: {exc}", file=sys.stderr)
        return 1
    if not health.port:
        print("WORKER_HEALTH_PORT is not set: the health endpoint is off", file=sys.stderr)
        return 1
    status = probe(health.port, "127.0.0.1" if health.host in ("0.0.0.0", "::") else health.host)
    print(f"/healthz: {status or 'no answer'}")
    return 0 if status == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
