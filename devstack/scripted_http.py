"""What every scripted fake model server shares: the script, the recorder, the HTTP plumbing.

A provider's fake (`FakeAnthropic`, `FakeOpenAI`) says only what differs: its routes, how it
checks credentials and requests, and the shapes of its replies and errors.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
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
        from devstack.scripted_handler import handler_for  # it imports the step types above

        self._server = ThreadingHTTPServer(("127.0.0.1", port), handler_for(self))
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
        # A short poll: `stop` (shutdown) waits for the serving loop to look, 0.5 s by default, at every test's end.
        serve = functools.partial(self._server.serve_forever, poll_interval=0.02)
        threading.Thread(target=serve, name=self.name, daemon=True).start()
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

    def received(self, record: Any) -> None:
        """Keep what a request sent (`requests`), in arrival order."""
        with self._lock:
            self.requests.append(record)

    def count_fault(self) -> None:
        """One more scripted fault served (`faults_served`)."""
        with self._lock:
            self.faults_served += 1

    def next_step(self, body: dict[str, Any]) -> Step:
        """The script's next step, or the responder's answer to `body` once the script is spent."""
        with self._lock:
            if self.script:
                return self.script.pop(0)
            served = len(self.requests)
        if self.responder is None:
            # How many requests came names a test's miscount, or a retried attempt asking again, in its failure.
            return Fault(500, f"{self.name}: script exhausted and no responder (request {served})")
        return self.responder(body)


def text_pieces(text: str) -> list[str]:
    """How a fake streams text: word by word, each piece keeping its leading space."""
    pieces: list[str] = []
    for i, word in enumerate(text.split(" ")):
        pieces.append(word if i == 0 else " " + word)
    return [p for p in pieces if p]
