"""The codec server: the Temporal UI and CLI send it encoded payloads and show what it sends back.

    CODEC_SERVER_TOKEN=... python -m payloads.codec_server [--host 127.0.0.1] [--port 8081]

Temporal's codec server protocol: `POST .../encode` and `POST .../decode` with a body of Payloads as
proto3 JSON (`{"payloads": [{"metadata": {"encoding": "<base64>"}, "data": "<base64>"}]}`), answered
in the same shape; only the last path segment picks the route, and `X-Namespace` names the namespace.

Every request must carry the token, as `Authorization: Bearer <token>` (CLI: `--codec-auth`) or as the
first path segment (`http://host:port/<token>/decode`; the UI cannot add headers, so its codec endpoint
is `http://host:port/<token>`). Preflight requests from the UI's origin get CORS answers without it.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import json
import logging
import sys
import threading
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads
from temporalio.converter import PayloadCodec

from config.sections import DEFAULT_CODEC_ORIGINS
from config.settings import Settings
from models.errors import ConfigError
from payloads.converter import payload_codec

MAX_BODY_BYTES = 64 * 1024 * 1024

log = logging.getLogger("codec_server")


class CodecServer:
    """A threaded HTTP server running `codec` for authorised callers; async codec calls run on one event loop."""

    def __init__(
        self,
        codec: PayloadCodec | None,
        token: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        origins: tuple[str, ...] = DEFAULT_CODEC_ORIGINS,
        namespaces: tuple[str, ...] = (),
    ) -> None:
        if not token:
            raise ConfigError("CODEC_SERVER_TOKEN must be set: the codec server decrypts payloads for whoever calls it")
        self.codec = codec
        self._token = token.encode()
        self.origins = origins
        self.namespaces = namespaces
        self._loop = asyncio.new_event_loop()
        self._http = ThreadingHTTPServer((host, port), _handler(self))
        self._http.daemon_threads = True

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


def _handler(server: CodecServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # the default log line would print the path (token)
            pass

        def _cors(self) -> dict[str, str]:
            origin = self.headers.get("Origin")
            if origin and origin in server.origins:
                return {
                    "Access-Control-Allow-Origin": origin,
                    "Access-Control-Allow-Credentials": "true",
                    "Vary": "Origin",
                }
            return {}

        def _send(self, status: int, body: bytes = b"", headers: Mapping[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in {**self._cors(), **(headers or {})}.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _error(self, status: int, message: str) -> None:
            self._send(status, json.dumps({"error": message}).encode(), {"Content-Type": "application/json"})

        def _route(self) -> tuple[str | None, str | None]:
            """(encode|decode or None, the token path segment if any)."""
            parts = [p for p in self.path.split("?")[0].split("/") if p]
            route = parts[-1] if parts and parts[-1] in ("encode", "decode") else None
            return route, parts[0] if len(parts) > 1 else None

        def do_OPTIONS(self) -> None:
            self._send(
                204,
                headers={
                    "Access-Control-Allow-Methods": "POST, OPTIONS",
                    "Access-Control-Allow-Headers": "Content-Type, X-Namespace, Authorization",
                    "Access-Control-Max-Age": "600",
                },
            )

        def do_POST(self) -> None:
            route, path_token = self._route()
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY_BYTES:
                self.close_connection = True
                return self._error(413, f"body over {MAX_BODY_BYTES} bytes")
            body = self.rfile.read(length)
            namespace = self.headers.get("X-Namespace") or ""
            if (denied := server.authorise(self.headers.get("Authorization"), path_token)) is not None:
                log.warning("%s %s refused (%d)", route or "?", namespace, denied)
                return self._error(
                    denied, "a valid codec server token is required" if denied == 401 else "wrong codec server token"
                )
            if route is None:
                return self._error(404, "the last path segment must be encode or decode")
            if server.namespaces and namespace not in server.namespaces:
                return self._error(403, f"namespace {namespace!r} is not served here")
            try:
                out = server.run(route, body)
            except ValueError as exc:  # malformed JSON, or a payload this codec cannot decode (missing key, blob)
                log.warning("%s %s failed: %s", route, namespace, exc)
                return self._error(400, str(exc))
            except Exception:  # e.g. the blob store is unreachable: the caller may retry
                log.exception("%s %s failed", route, namespace)
                return self._error(500, f"{route} failed; see the codec server's log")
            log.info("%s %s: %d bytes in, %d out", route, namespace, len(body), len(out))
            self._send(200, out, {"Content-Type": "application/json"})

        def do_GET(self) -> None:
            self._error(405, "use POST .../encode or POST .../decode")

    return Handler


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
