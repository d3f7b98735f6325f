"""What every scripted fake model server shares: the script, the recorder, the HTTP plumbing.

A provider's fake (`FakeAnthropic`, `FakeOpenAI`) says only what differs: its routes, how it
checks credentials and requests, and the shapes of its replies and errors.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


@dataclass
class Reply:
    """A model turn: text and/or tool calls (name, arguments)."""

    text: str = ""
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    delay: float = 0.0
    output_tokens: int | None = None
    chunk_delay: float = 0.0
    """Seconds between streamed events (a request with `stream: true` gets the reply as SSE, word by word)."""


@dataclass
class Fault:
    """An HTTP error the server returns instead of a reply."""

    status: int
    message: str = "injected fault"
    retry_after: float | None = None
    delay: float = 0.0
    kind: str | None = None
    """The body's error type or code (None: the one the provider gives that status)."""


@dataclass
class StreamError:
    """HTTP 200, a streamed reply begun (`text` streamed so far), then the provider's in-stream error event.

    `kind` is the provider's error type or code (Anthropic `overloaded_error`, OpenAI `server_error` ...). The
    OpenAI fake sends it as an `error` event, or with `failed=True` as `response.failed`. Only a streamed
    request can fail after its 200: a plain one gets an HTTP 500 saying the script expected a stream.
    """

    kind: str
    message: str = "injected stream error"
    text: str = ""
    failed: bool = False
    retry_after: float | None = None
    """Sent as the 200's `retry-after` header (a provider or proxy that knows it is shedding load may say so)."""
    delay: float = 0.0
    chunk_delay: float = 0.0


@dataclass
class Truncated:
    """HTTP 200 and the streamed `reply` without its last `cut` events: the connection drops mid-stream, or with
    `clean=True` the body ends properly (a proxy that closes the stream early) before the final event."""

    reply: Reply = field(default_factory=lambda: Reply(text="A reply cut short"))
    cut: int = 1
    clean: bool = False
    delay: float = 0.0


Step = Reply | Fault | StreamError | Truncated
Responder = Callable[[dict[str, Any]], Step]


def capped_output(reply: Reply, body: dict[str, Any], key: str, estimate: int) -> tuple[int, bool]:
    """Output tokens billed for `reply`: its own figure (else `estimate`) cut at the request's limit, as a real
    provider stops at it; and whether the limit cut it."""
    tokens = reply.output_tokens if reply.output_tokens is not None else estimate
    limit = body.get(key)
    if isinstance(limit, int) and 0 < limit < tokens:
        return limit, True
    return tokens, False


def estimate_tokens(payload: Any) -> int:
    """A deterministic stand-in for tokenisation: about four characters per token."""
    return max(1, len(json.dumps(payload, sort_keys=True)) // 4)


class ScriptedServer:
    """Answers POSTs from a script, then from a responder; records every request. Subclasses fill the hooks."""

    name = "fake"
    credential_headers: tuple[str, ...] = ("authorization",)

    def __init__(self, script: list[Step] | None = None, responder: Responder | None = None, port: int = 0) -> None:
        self.script: list[Step] = list(script or [])
        self.responder = responder
        self.requests: list[Any] = []
        self.faults_served = 0
        self._lock = threading.Lock()
        self._counter = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True

    # -- hooks -------------------------------------------------------------------------------
    def route(self, path: str) -> str | None:
        """The API a path belongs to, or None for 404."""
        raise NotImplementedError

    def authorised(self, headers: Any) -> str | None:
        """None when the request carries credentials, else the 401 message."""
        raise NotImplementedError

    def record(self, api: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
        """The object kept in `requests` (it must have a `served` attribute)."""
        raise NotImplementedError

    def invalid(self, api: str, body: dict[str, Any]) -> str | None:
        """A 400 message when the provider would refuse the request."""
        return None

    def reply_body(self, api: str, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        """The provider's success payload for `reply`."""
        raise NotImplementedError

    def direct_answer(self, api: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """The payload of a request answered outside the script and the recorder (e.g. token counting), or None."""
        return None

    def error_body(self, status: int, message: str, kind: str | None = None) -> dict[str, Any]:
        """The provider's error payload, with error type `kind` (None: the status's usual one)."""
        raise NotImplementedError

    def stream_events(self, api: str, body: dict[str, Any], reply: Reply) -> list[tuple[str, dict[str, Any]]]:
        """The provider's streamed reply as (event name, data) pairs, for a request with `stream: true`."""
        raise NotImplementedError

    def stream_error_events(
        self, api: str, body: dict[str, Any], fault: StreamError
    ) -> list[tuple[str, dict[str, Any]]]:
        """The provider's stream for `fault`: a reply begun with `fault.text`, then its error event."""
        raise NotImplementedError

    def truncated_events(self, api: str, body: dict[str, Any], cut: Truncated) -> list[tuple[str, dict[str, Any]]]:
        """The streamed reply without its last `cut.cut` events."""
        events = self.stream_events(api, body, cut.reply)
        return events[: max(0, len(events) - cut.cut)]

    # -- lifecycle and script ------------------------------------------------------------------
    @property
    def address(self) -> str:
        """http://127.0.0.1:<port>"""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> Self:
        """Serve in a background thread."""
        threading.Thread(target=self._server.serve_forever, name=self.name, daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def push(self, *steps: Step) -> None:
        """Append steps to the script."""
        with self._lock:
            self.script.extend(steps)

    def assert_script_consumed(self) -> None:
        """Fail when scripted steps were never requested: the test expected more calls than happened."""
        with self._lock:
            left = list(self.script)
        assert not left, f"{len(left)} scripted step(s) never requested: {left}"

    def next_number(self) -> int:
        """A fresh number for response and tool-call ids."""
        with self._lock:
            self._counter += 1
            return self._counter

    def _next(self, body: dict[str, Any]) -> Step:
        with self._lock:
            if self.script:
                return self.script.pop(0)
        if self.responder is None:
            return Fault(500, f"{self.name}: script exhausted and no responder")
        return self.responder(body)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in two sends; Nagle would hold the body ~40 ms

            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.send_header("request-id", f"req_fake_{len(fake.requests)}")
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client went away (e.g. its worker was killed mid-call)

            def _send_events(
                self,
                events: list[tuple[str, dict[str, Any]]],
                pause: float,
                headers: dict[str, str] | None = None,
                *,
                drop: bool = False,
            ) -> None:
                """Server-sent events, one chunk each (chunked encoding), `pause` seconds apart; with `drop` the
                connection closes after the last one, without the chunked body's end (a cut connection)."""
                try:
                    self.send_response(200)
                    self.send_header("content-type", "text/event-stream")
                    self.send_header("cache-control", "no-cache")
                    self.send_header("transfer-encoding", "chunked")
                    self.send_header("request-id", f"req_fake_{len(fake.requests)}")
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    for name, data in events:
                        chunk = f"event: {name}\ndata: {json.dumps(data)}\n\n".encode()
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                        self.wfile.flush()
                        if pause:
                            time.sleep(pause)
                    if drop:
                        self.close_connection = True  # the socket closes with the body unfinished
                        return
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client went away (e.g. its worker was killed mid-stream)

            def _error(
                self, status: int, message: str, headers: dict[str, str] | None = None, kind: str | None = None
            ) -> None:
                self._send(status, fake.error_body(status, message, kind), headers)

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                api = fake.route(self.path.split("?")[0])
                if api is None:
                    return self._error(404, f"no route {self.path}")
                if problem := fake.authorised(self.headers):
                    return self._error(401, problem)
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError:
                    return self._error(400, "request body is not JSON")
                if (direct := fake.direct_answer(api, body)) is not None:
                    return self._send(200, direct)
                headers = {k.lower(): v for k, v in self.headers.items() if k.lower() not in fake.credential_headers}
                record = fake.record(api, body, headers)
                with fake._lock:
                    fake.requests.append(record)
                if problem := fake.invalid(api, body):
                    record.served = "invalid"
                    return self._error(400, problem)
                step = fake._next(body)
                if step.delay:
                    time.sleep(step.delay)
                if isinstance(step, Fault):
                    record.served = "fault"
                    with fake._lock:
                        fake.faults_served += 1
                    return self._error(step.status, step.message, _retry_after_header(step.retry_after), step.kind)
                if isinstance(step, StreamError | Truncated):
                    return self._stream_fault(api, body, step, record)
                record.served = "reply"
                if body.get("stream"):
                    return self._send_events(fake.stream_events(api, body, step), step.chunk_delay)
                self._send(200, fake.reply_body(api, body, step))

            def _stream_fault(self, api: str, body: dict[str, Any], step: StreamError | Truncated, record: Any) -> None:
                """A stream that fails after its 200: an error event, or the final event never sent."""
                with fake._lock:
                    fake.faults_served += 1
                if not body.get("stream"):
                    record.served = "fault"
                    return self._error(500, f"{fake.name}: {type(step).__name__} was scripted for a streamed request")
                if isinstance(step, StreamError):
                    record.served = "stream_error"
                    events = fake.stream_error_events(api, body, step)
                    return self._send_events(events, step.chunk_delay, _retry_after_header(step.retry_after))
                record.served = "truncated"
                self._send_events(fake.truncated_events(api, body, step), step.reply.chunk_delay, drop=not step.clean)

        return Handler


def _retry_after_header(seconds: float | None) -> dict[str, str]:
    return {"retry-after": f"{seconds:g}"} if seconds is not None else {}


def text_pieces(text: str) -> list[str]:
    """How a fake streams text: word by word, each piece keeping its leading space."""
    pieces: list[str] = []
    for i, word in enumerate(text.split(" ")):
        pieces.append(word if i == 0 else " " + word)
    return [p for p in pieces if p]
