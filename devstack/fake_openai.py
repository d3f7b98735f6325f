"""A scripted stand-in for the OpenAI API (Responses and Chat Completions) on 127.0.0.1.

The real `openai` client (and the OpenAI Agents SDK on top of it) talks to it through
`OPENAI_BASE_URL` (`<url>/v1`). Like `FakeAnthropic`, it answers from a script (replies,
HTTP faults, delays) or, once the script is empty, from a responder; it records every request.
The response shapes follow the installed SDK's types (`openai.types.responses.Response`,
`openai.types.chat.ChatCompletion`) so the real client parses them.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from devstack.fake_anthropic import Fault, Reply, Responder, Step, estimate_tokens

__all__ = ["FakeOpenAI", "Fault", "Reply", "OpenAIRecorded"]

_ERROR_TYPES = {400: "invalid_request_error", 401: "invalid_api_key", 404: "not_found", 429: "rate_limit_exceeded"}
ROUTES = {"/v1/responses": "responses", "/v1/chat/completions": "chat"}


@dataclass
class OpenAIRecorded:
    """One request as received, without credentials."""

    api: str
    """`responses` or `chat`."""
    body: dict[str, Any]
    headers: dict[str, str]
    at: float
    served: str = "pending"

    @property
    def items(self) -> list[Any]:
        """The conversation sent: Responses `input` items or Chat `messages`."""
        if self.api == "chat":
            return self.body.get("messages", [])
        raw = self.body.get("input", [])
        return [{"role": "user", "content": raw}] if isinstance(raw, str) else raw

    def tool_outputs(self) -> list[dict[str, str]]:
        """Every tool result sent back to the model, as `{"call_id", "output"}`."""
        if self.api == "chat":
            return [{"call_id": m["tool_call_id"], "output": m["content"]} for m in self.items if m.get("role") == "tool"]
        return [
            {"call_id": i["call_id"], "output": i["output"]}
            for i in self.items
            if isinstance(i, dict) and i.get("type") == "function_call_output"
        ]

    @property
    def tool_names(self) -> list[str]:
        """Names of the tools the request offered the model."""
        return [t.get("name") or t.get("function", {}).get("name") for t in self.body.get("tools", [])]


class FakeOpenAI:
    """The server; use as a context manager or call start()/stop()."""

    def __init__(self, script: list[Step] | None = None, responder: Responder | None = None, port: int = 0) -> None:
        self.script: list[Step] = list(script or [])
        self.responder = responder
        self.requests: list[OpenAIRecorded] = []
        self.faults_served = 0
        self._lock = threading.Lock()
        self._counter = 0
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler_class())
        self._server.daemon_threads = True

    @property
    def url(self) -> str:
        """Base URL for OPENAI_BASE_URL (the SDK expects the `/v1` prefix in it)."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def start(self) -> "FakeOpenAI":
        """Serve in a background thread."""
        threading.Thread(target=self._server.serve_forever, name="fake-openai", daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "FakeOpenAI":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def push(self, *steps: Step) -> None:
        """Append steps to the script."""
        with self._lock:
            self.script.extend(steps)

    def assert_script_consumed(self) -> None:
        """Fail when scripted steps were never requested."""
        with self._lock:
            left = list(self.script)
        assert not left, f"{len(left)} scripted step(s) never requested: {left}"

    def _next(self, body: dict[str, Any]) -> Step:
        with self._lock:
            if self.script:
                return self.script.pop(0)
        if self.responder is None:
            return Fault(500, "fake server: script exhausted and no responder")
        return self.responder(body)

    def _number(self) -> int:
        with self._lock:
            self._counter += 1
            return self._counter

    def responses_body(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        """A `Response` object as the Responses API returns it."""
        n = self._number()
        output: list[dict[str, Any]] = []
        if reply.text:
            output.append(
                {
                    "type": "message",
                    "id": f"msg_fake_{n:06d}",
                    "role": "assistant",
                    "status": "completed",
                    "content": [{"type": "output_text", "text": reply.text, "annotations": []}],
                }
            )
        for i, (name, args) in enumerate(reply.tool_calls):
            output.append(
                {
                    "type": "function_call",
                    "id": f"fc_fake_{n:04d}_{i}",
                    "call_id": f"call_{n:04d}_{i}",
                    "name": name,
                    "arguments": json.dumps(args),
                    "status": "completed",
                }
            )
        tokens_in = estimate_tokens(body.get("input"))
        tokens_out = reply.output_tokens if reply.output_tokens is not None else estimate_tokens(output)
        return {
            "id": f"resp_fake_{n:06d}",
            "object": "response",
            "created_at": time.time(),
            "model": body.get("model", "unknown"),
            "status": "completed",
            "output": output,
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": {
                "input_tokens": tokens_in,
                "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                "output_tokens": tokens_out,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": tokens_in + tokens_out,
            },
        }

    def chat_body(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        """A `ChatCompletion` object as Chat Completions returns it."""
        n = self._number()
        calls = [
            {"id": f"call_{n:04d}_{i}", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
            for i, (name, args) in enumerate(reply.tool_calls)
        ]
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
        if calls:
            message["tool_calls"] = calls
        tokens_in = estimate_tokens(body.get("messages"))
        tokens_out = reply.output_tokens if reply.output_tokens is not None else estimate_tokens(message)
        return {
            "id": f"chatcmpl-fake-{n:06d}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "unknown"),
            "choices": [{"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop", "logprobs": None}],
            "usage": {"prompt_tokens": tokens_in, "completion_tokens": tokens_out, "total_tokens": tokens_in + tokens_out},
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
                    self.send_header("x-request-id", f"req_fake_{len(fake.requests)}")
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client went away (e.g. its worker was killed mid-call)

            def _error(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
                kind = _ERROR_TYPES.get(status, "server_error")
                self._send(status, {"error": {"message": message, "type": kind, "param": None, "code": kind}}, headers)

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("content-length") or 0))
                api = ROUTES.get(self.path.split("?")[0])
                if api is None:
                    return self._error(404, f"no route {self.path}")
                if not (self.headers.get("authorization") or "").startswith("Bearer "):
                    return self._error(401, "an Authorization: Bearer header is required")
                try:
                    body = json.loads(raw)
                except json.JSONDecodeError:
                    return self._error(400, "request body is not JSON")
                if body.get("stream"):
                    return self._error(400, "fake server: streaming is not supported")
                headers = {k.lower(): v for k, v in self.headers.items() if k.lower() != "authorization"}
                record = OpenAIRecorded(api=api, body=body, headers=headers, at=time.time())
                with fake._lock:
                    fake.requests.append(record)
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
                reply = fake.responses_body(body, step) if api == "responses" else fake.chat_body(body, step)
                self._send(200, reply)

        return Handler
