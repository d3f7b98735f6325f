"""A scripted stand-in for the Anthropic Messages API on 127.0.0.1.

The real `anthropic` client talks to it through `ANTHROPIC_BASE_URL`. It answers from a
script (replies, HTTP faults, delays) or, once the script is empty, from a responder
function; it records every request so tests can count what was sent (and paid for).
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


@dataclass
class Reply:
    """A model turn: text and/or tool calls (name, arguments)."""

    text: str = ""
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    delay: float = 0.0
    output_tokens: int | None = None


@dataclass
class Fault:
    """An HTTP error the server returns instead of a reply."""

    status: int
    message: str = "injected fault"
    retry_after: float | None = None
    delay: float = 0.0


Step = Reply | Fault
Responder = Callable[[dict[str, Any]], Reply]


@dataclass
class Recorded:
    """One request as received, without credentials."""

    body: dict[str, Any]
    headers: dict[str, str]
    at: float
    served: str = "pending"
    """`reply`, `fault` or `invalid` once answered."""

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The conversation sent."""
        return self.body.get("messages", [])

    def tool_results(self) -> list[dict[str, Any]]:
        """tool_result blocks in the last message."""
        last = self.messages[-1]["content"] if self.messages else []
        return [b for b in last if isinstance(b, dict) and b.get("type") == "tool_result"]


def estimate_tokens(payload: Any) -> int:
    """A deterministic stand-in for tokenisation: about four characters per token."""
    return max(1, len(json.dumps(payload, sort_keys=True)) // 4)


def check_conversation(body: dict[str, Any]) -> str | None:
    """The Messages API's own rules: every tool_use answered by a tool_result in the next user turn."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        return "max_tokens: must be a positive integer"
    for i, msg in enumerate(messages):
        if msg.get("role") == "assistant":
            uses = [b["id"] for b in msg.get("content", []) if isinstance(b, dict) and b.get("type") == "tool_use"]
            if not uses:
                continue
            if i + 1 >= len(messages):
                return f"messages.{i}: tool_use ids {uses} have no tool_result after them"
            answered = {
                b.get("tool_use_id") for b in messages[i + 1].get("content", []) if isinstance(b, dict) and b.get("type") == "tool_result"
            }
            if set(uses) - answered:
                return f"messages.{i + 1}: tool_use ids {sorted(set(uses) - answered)} were not answered with tool_result blocks"
    return None


class FakeAnthropic:
    """The server; use as a context manager or call start()/stop()."""

    def __init__(self, script: list[Step] | None = None, responder: Responder | None = None, port: int = 0) -> None:
        self.script: list[Step] = list(script or [])
        self.responder = responder
        self.requests: list[Recorded] = []
        self.faults_served = 0
        self._lock = threading.Lock()
        self._counter = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Base URL for ANTHROPIC_BASE_URL."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakeAnthropic":
        """Serve in a background thread."""
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-anthropic", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "FakeAnthropic":
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

    @property
    def input_tokens_charged(self) -> int:
        """Input tokens of every request that got a reply (what a real provider would bill)."""
        return sum(estimate_tokens(r.body.get("messages")) for r in self.requests if r.served == "reply")

    def _next(self, body: dict[str, Any]) -> Step:
        with self._lock:
            if self.script:
                return self.script.pop(0)
        if self.responder is None:
            return Fault(500, "fake server: script exhausted and no responder")
        return self.responder(body)

    def _reply_body(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        with self._lock:
            self._counter += 1
            n = self._counter
        content: list[dict[str, Any]] = [{"type": "text", "text": reply.text}] if reply.text else []
        for i, (name, args) in enumerate(reply.tool_calls):
            content.append({"type": "tool_use", "id": f"toolu_{n:04d}_{i}", "name": name, "input": args})
        out_tokens = reply.output_tokens if reply.output_tokens is not None else estimate_tokens(content)
        return {
            "id": f"msg_fake_{n:06d}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "unknown"),
            "content": content,
            "stop_reason": "tool_use" if reply.tool_calls else "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": estimate_tokens(body.get("messages")), "output_tokens": out_tokens},
        }

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

            def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
                kind = _ERROR_TYPES.get(status, "api_error")
                self._send(status, {"type": "error", "error": {"type": kind, "message": message}}, headers)

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                if self.path.split("?")[0] != "/v1/messages":
                    return self._error(404, f"no route {self.path}")
                if not self.headers.get("x-api-key") and not self.headers.get("authorization"):
                    return self._error(401, "x-api-key header is required")
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError:
                    return self._error(400, "request body is not JSON")
                headers = {k.lower(): v for k, v in self.headers.items() if k.lower() not in ("x-api-key", "authorization")}
                record = Recorded(body=body, headers=headers, at=time.time())
                with fake._lock:
                    fake.requests.append(record)
                if problem := check_conversation(body):
                    record.served = "invalid"
                    return self._error(400, problem)
                step = fake._next(body)
                if step.delay:
                    time.sleep(step.delay)
                if isinstance(step, Fault):
                    record.served = "fault"
                    with fake._lock:
                        fake.faults_served += 1
                    extra = {"retry-after": f"{step.retry_after:g}"} if step.retry_after is not None else {}
                    return self._error(step.status, step.message, extra)
                record.served = "reply"
                self._send(200, fake._reply_body(body, step))

        return Handler
