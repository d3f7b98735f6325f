"""The codec server: the Temporal UI and CLI send it encoded payloads and show what it sends back.

    CODEC_SERVER_TOKEN=... python -m payloads.codec_server [--host 127.0.0.1] [--port 8081]

Temporal's codec server protocol: `POST .../encode` and `POST .../decode` with a body of Payloads as
proto3 JSON (`{"payloads": [{"metadata": {"encoding": "<base64>"}, "data": "<base64>"}]}`), answered
in the same shape; only the last path segment picks the route, and `X-Namespace` names the namespace.

Every request must carry the token, as `Authorization: Bearer <token>` (CLI: `--codec-auth`) or as the
first path segment (`http://host:port/<token>/decode`; the UI cannot add headers, so its codec endpoint
is `http://host:port/<token>`). Preflight requests from the UI's origin get CORS answers without it.

Nothing of a body is read before the caller is authenticated and its `Content-Length` is known and
within CODEC_SERVER_MAX_BODY_BYTES: 401/403 without a valid token, 411 without a length (or chunked),
400 for a malformed or negative one, 413 over the limit; each refusal closes the connection unread.

A request's line, headers and body must all arrive within CODEC_SERVER_TIMEOUT_SECONDS of its connection
being taken up: one deadline per request, however slowly the bytes trickle in (a timeout per read would
let a client that sends a byte every few seconds hold its worker forever), so a client without a token
is cut at the deadline too. At most CODEC_SERVER_THREADS requests are served at once; a connection that
finds them all busy is answered 503 at once rather than queued behind slow clients, and every answer
closes its connection, so an idle keep-alive connection never holds a worker.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import io
import json
import logging
import sys
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler
from typing import Any

from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads
from temporalio.converter import PayloadCodec

from config.sections import DEFAULT_CODEC_MAX_BODY_BYTES, DEFAULT_CODEC_ORIGINS
from config.settings import Settings
from models.errors import ConfigError
from payloads.converter import payload_codec
from payloads.http_pool import DeadlineReader, PooledHTTPServer

log = logging.getLogger("codec_server")

ROUTES = ("encode", "decode")


class Refused(Exception):
    """A request answered with an error status (its body left unread; every answer closes the connection)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class CodecServer:
    """An HTTP server running `codec` for authorised callers; async codec calls run on one event loop."""

    def __init__(
        self,
        codec: PayloadCodec | None,
        token: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        origins: tuple[str, ...] = DEFAULT_CODEC_ORIGINS,
        namespaces: tuple[str, ...] = (),
        max_body_bytes: int = DEFAULT_CODEC_MAX_BODY_BYTES,
        timeout_seconds: float = 10.0,
        threads: int = 8,
    ) -> None:
        if not token:
            raise ConfigError("CODEC_SERVER_TOKEN must be set: the codec server decrypts payloads for whoever calls it")
        self.codec = codec
        self._token = token.encode()
        self.origins = origins
        self.namespaces = namespaces
        self.max_body_bytes = max_body_bytes
        self.timeout_seconds = timeout_seconds
        self._loop = asyncio.new_event_loop()
        self._http = PooledHTTPServer((host, port), CodecRequestHandler, self, threads)

    @property
    def url(self) -> str:
        """http://host:port"""
        host, port = self._http.server_address[:2]
        return f"http://{host.decode() if isinstance(host, bytes) else host}:{port}"

    def start(self) -> CodecServer:
        """Serve in background threads."""
        threading.Thread(target=self._loop.run_forever, name="codec-loop", daemon=True).start()
        threading.Thread(target=self._http.serve_forever, name="codec-http", daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket and the loop."""
        self._http.shutdown()
        self._http.server_close()
        self._loop.call_soon_threadsafe(self._loop.stop)

    def __enter__(self) -> CodecServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def authorise(self, header: str | None, path_token: str | None) -> int | None:
        """None when a token matches; 401 when none was given, 403 when a wrong one was."""
        offered = [t for t in ((header or "").removeprefix("Bearer ").strip(), path_token) if t]
        if not offered:
            return 401
        return None if any(hmac.compare_digest(t.encode(), self._token) for t in offered) else 403

    def body_length(self, raw: str | None, transfer_encoding: str | None = None) -> int:
        """The announced body length (`raw`, the Content-Length header), checked before any of the body is read."""
        if "chunked" in (transfer_encoding or "").lower():
            raise Refused(411, "chunked bodies are not accepted: send Content-Length")
        if raw is None:
            raise Refused(411, "Content-Length is required")
        if not raw.strip().isdigit():  # also refuses negative lengths, which would read until the socket closes
            raise Refused(400, f"Content-Length must be a non-negative integer, got {raw[:20]!r}")
        length = int(raw)
        if length > self.max_body_bytes:
            raise Refused(413, f"body of {length} bytes is over the limit of {self.max_body_bytes}")
        return length

    def run(self, route: str, body: bytes) -> bytes:
        """Encode or decode a Payloads JSON body; ValueError for anything malformed."""
        payloads = Payloads()
        try:
            json_format.Parse(body, payloads)
        except json_format.ParseError as exc:
            raise ValueError(f"body is not Payloads JSON: {exc}") from None
        if self.codec is not None:
            call = self.codec.encode if route == "encode" else self.codec.decode
            result = asyncio.run_coroutine_threadsafe(call(list(payloads.payloads)), self._loop).result()
            payloads = Payloads(payloads=result)
        return json.dumps(json_format.MessageToDict(payloads)).encode()


class CodecRequestHandler(BaseHTTPRequestHandler):
    """Temporal's codec protocol over HTTP/1.1; every check happens before the body is read."""

    protocol_version = "HTTP/1.1"
    server: PooledHTTPServer[CodecServer]

    def setup(self) -> None:
        """Read the request (line, headers, body) through one deadline: a slow client cannot hold a thread."""
        super().setup()
        self.rfile.close()  # the plain socket file: replaced by one that keeps the deadline
        self.rfile = io.BufferedReader(DeadlineReader(self.connection, self.server.app.timeout_seconds))

    def log_message(self, format: str, *args: Any) -> None:  # the default log line would print the path (token)
        pass

    def do_OPTIONS(self) -> None:
        """CORS preflight: answered without the token (browsers never send one there)."""
        allow = {
            "Access-Control-Allow-Methods": "POST, OPTIONS",
            "Access-Control-Allow-Headers": "Content-Type, X-Namespace, Authorization",
            "Access-Control-Max-Age": "600",
        }
        self._send(204, b"", allow)

    def do_GET(self) -> None:
        """Only POST is served."""
        self._error(405, "use POST .../encode or POST .../decode")

    def do_POST(self) -> None:
        """Authenticate, route, bound the body, then run the codec."""
        app = self.server.app
        namespace = self.headers.get("X-Namespace") or ""
        route, path_token = self._route()
        try:
            self._admit(route, path_token, namespace)
            length = app.body_length(self.headers.get("Content-Length"), self.headers.get("Transfer-Encoding"))
            body = self._read_body(length)
            assert route is not None
            out = app.run(route, body)
        except TimeoutError:  # the request's deadline: nothing more can be said to this client
            self.close_connection = True
            log.warning("%s %s: client too slow, disconnected", route or "?", namespace)
            return None
        except Refused as refusal:
            log.warning("%s %s refused (%d)", route or "?", namespace, refusal.status)
            return self._error(refusal.status, str(refusal))
        except ValueError as exc:  # malformed JSON, or a payload this codec cannot decode (missing key, blob)
            log.warning("%s %s failed: %s", route, namespace, exc)
            return self._error(400, str(exc))
        except Exception:  # e.g. the blob store is unreachable: the caller may retry
            log.exception("%s %s failed", route, namespace)
            return self._error(500, f"{route} failed; see the codec server's log")
        log.info("%s %s: %d bytes in, %d out", route, namespace, len(body), len(out))
        self._send(200, out, {"Content-Type": "application/json"})

    def _read_body(self, length: int) -> bytes:
        """Exactly `length` bytes (within the request's deadline, which the reader keeps: TimeoutError after it)."""
        chunks, left = [], length
        while left:
            chunk = self.rfile.read1(min(left, 65536))
            if not chunk:
                raise Refused(400, f"the body ended {left} bytes short of its Content-Length")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    def _admit(self, route: str | None, path_token: str | None, namespace: str) -> None:
        """Token first, then the route and namespace: Refused (body unread) for any of them."""
        denied = self.server.app.authorise(self.headers.get("Authorization"), path_token)
        if denied is not None:
            raise Refused(
                denied, "a valid codec server token is required" if denied == 401 else "wrong codec server token"
            )
        if route is None:
            raise Refused(404, "the last path segment must be encode or decode")
        namespaces = self.server.app.namespaces
        if namespaces and namespace not in namespaces:
            raise Refused(403, f"namespace {namespace!r} is not served here")

    def _route(self) -> tuple[str | None, str | None]:
        """(encode|decode or None, the token path segment if any)."""
        parts = [p for p in self.path.split("?")[0].split("/") if p]
        route = parts[-1] if parts and parts[-1] in ROUTES else None
        return route, parts[0] if len(parts) > 1 else None

    def _cors(self) -> dict[str, str]:
        origin = self.headers.get("Origin")
        if origin and origin in self.server.app.origins:
            return {"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Credentials": "true", "Vary": "Origin"}
        return {}

    def _send(self, status: int, body: bytes, headers: Mapping[str, str]) -> None:
        self.connection.settimeout(self.server.app.timeout_seconds)  # the answer gets its own time to leave
        self.close_connection = True  # one request per connection: an idle keep-alive one would hold a worker
        self.send_response(status)
        for name, value in {**self._cors(), **headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str) -> None:
        self._send(status, json.dumps({"error": message}).encode(), {"Content-Type": "application/json"})


def server_from_settings(settings: Settings, host: str | None = None, port: int | None = None) -> CodecServer:
    """A CodecServer configured by CODEC_SERVER_* plus the payload codec's own settings."""
    config = settings.codec_server
    return CodecServer(
        payload_codec(settings),
        config.token,
        host=host or config.host,
        port=config.port if port is None else port,
        origins=config.origins,
        namespaces=config.namespaces,
        max_body_bytes=config.max_body_bytes,
        timeout_seconds=config.timeout_seconds,
        threads=config.threads,
    )


def main(argv: list[str] | None = None) -> int:
    """Run until interrupted; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m payloads.codec_server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", help="address to listen on (CODEC_SERVER_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (CODEC_SERVER_PORT, default 8081; 0 picks a free one)")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        server = server_from_settings(settings, host=args.host, port=args.port)
    except ConfigError as exc:
        print(f"codec server: configuration error: {exc}", file=sys.stderr)
        return 2
    server.start()
    log.info("codec server listening on %s (origins %s)", server.url, ", ".join(server.origins))
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
