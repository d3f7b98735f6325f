"""The HTTP side of a scripted fake model server: one handler class, bound to its server by `handler_for`."""

from __future__ import annotations

import json
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

from devstack.scripted_http import Fault, ScriptedServer, StreamError, Truncated


def handler_for(fake: ScriptedServer) -> type[BaseHTTPRequestHandler]:
    """A handler class that answers for `fake` (the standard library makes one handler per request)."""
    return type("Handler", (ScriptedHandler,), {"fake": fake})


class ScriptedHandler(BaseHTTPRequestHandler):
    """One request to a scripted fake: routed, checked, recorded, then answered with the script's next step."""

    fake: ScriptedServer
    """Set on the subclass each server makes (`handler_for`)."""

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
            self.send_header("request-id", f"req_fake_{len(self.fake.requests)}")
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
            self.send_header("request-id", f"req_fake_{len(self.fake.requests)}")
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

    def _error(self, status: int, message: str, headers: dict[str, str] | None = None, kind: str | None = None) -> None:
        self._send(status, self.fake.error_body(status, message, kind), headers)

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("content-length") or 0))
        api = self.fake.route(self.path.split("?")[0])
        if api is None:
            return self._error(404, f"no route {self.path}")
        if problem := self.fake.authorised(self.headers):
            return self._error(401, problem)
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            return self._error(400, "request body is not JSON")
        if (direct := self.fake.direct_answer(api, body)) is not None:
            return self._send(200, direct)
        headers = {k.lower(): v for k, v in self.headers.items() if k.lower() not in self.fake.credential_headers}
        record = self.fake.record(api, body, headers)
        self.fake.received(record)
        if problem := self.fake.invalid(api, body):
            record.served = "invalid"
            return self._error(400, problem)
        step = self.fake.next_step(body)
        if step.delay:
            time.sleep(step.delay)
        if isinstance(step, Fault):
            record.served = "fault"
            self.fake.count_fault()
            return self._error(step.status, step.message, retry_after_header(step.retry_after), step.kind)
        if isinstance(step, StreamError | Truncated):
            return self._stream_fault(api, body, step, record)
        record.served = "reply"
        if body.get("stream"):
            return self._send_events(self.fake.stream_events(api, body, step), step.chunk_delay)
        self._send(200, self.fake.reply_body(api, body, step))

    def _stream_fault(self, api: str, body: dict[str, Any], step: StreamError | Truncated, record: Any) -> None:
        """A stream that fails after its 200: an error event, or the final event never sent."""
        self.fake.count_fault()
        if not body.get("stream"):
            record.served = "fault"
            return self._error(500, f"{self.fake.name}: {type(step).__name__} was scripted for a streamed request")
        if isinstance(step, StreamError):
            record.served = "stream_error"
            events = self.fake.stream_error_events(api, body, step)
            return self._send_events(events, step.chunk_delay, retry_after_header(step.retry_after))
        record.served = "truncated"
        self._send_events(self.fake.truncated_events(api, body, step), step.reply.chunk_delay, drop=not step.clean)


def retry_after_header(seconds: float | None) -> dict[str, str]:
    """The `retry-after` header for a scripted 429/529/503, or none."""
    return {"retry-after": f"{seconds:g}"} if seconds is not None else {}
