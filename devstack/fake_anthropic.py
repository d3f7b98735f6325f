"""A scripted stand-in for the Anthropic Messages API on 127.0.0.1.

The real `anthropic` client talks to it through `ANTHROPIC_BASE_URL`. It answers from a
script (replies, HTTP faults, in-stream errors, cut streams, delays) or, once the script is
empty, from a responder function; it records every request so tests can count what was sent (and paid for).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from devstack.scripted_http import (
    Fault,
    Reply,
    Responder,
    ScriptedServer,
    Step,
    StreamError,
    Truncated,
    capped_output,
    estimate_tokens,
    text_pieces,
)

__all__ = [
    "FakeAnthropic",
    "Fault",
    "Recorded",
    "Reply",
    "Responder",
    "Step",
    "StreamError",
    "Truncated",
    "estimate_tokens",
]

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    504: "timeout_error",
    529: "overloaded_error",
}
"""The API's error type of each status (others: `api_error` for a 5xx, `invalid_request_error` for a 4xx)."""


@dataclass
class Recorded:
    """One request as received, without credentials."""

    body: dict[str, Any]
    headers: dict[str, str]
    at: float
    served: str = "pending"
    """`reply`, `fault`, `stream_error`, `truncated` or `invalid` once answered."""

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The conversation sent."""
        return list(self.body.get("messages", []))

    def tool_results(self) -> list[dict[str, Any]]:
        """tool_result blocks in the last message."""
        last = self.messages[-1]["content"] if self.messages else []
        return [b for b in last if isinstance(b, dict) and b.get("type") == "tool_result"]


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
                b.get("tool_use_id")
                for b in messages[i + 1].get("content", [])
                if isinstance(b, dict) and b.get("type") == "tool_result"
            }
            if set(uses) - answered:
                return f"messages.{i + 1}: tool_use ids {sorted(set(uses) - answered)} were not answered with tool_result blocks"
    return None


class FakeAnthropic(ScriptedServer):
    """The Messages API at `/v1/messages` (and token counting at `/v1/messages/count_tokens`, outside the script).

    Use as a context manager or call start()/stop(). A reply's output tokens stop at the request's `max_tokens`
    (`stop_reason: max_tokens`), as the real API's do.
    """

    name = "fake-anthropic"
    credential_headers = ("x-api-key", "authorization")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.counted: list[dict[str, Any]] = []
        """Bodies of token-counting requests (not in `requests`: nothing is generated or billed for them)."""
        self.count_tokens_reply: dict[str, Any] | None = None
        """When set, token counting answers 200 with this payload instead of `{"input_tokens": N}` (some
        Anthropic-compatible proxies answer that path with another shape)."""

    @property
    def url(self) -> str:
        """Base URL for ANTHROPIC_BASE_URL."""
        return self.address

    @property
    def input_tokens_charged(self) -> int:
        """Input tokens of every request that got a reply (what a real provider would bill)."""
        return sum(estimate_tokens(r.body.get("messages")) for r in self.requests if r.served == "reply")

    def route(self, path: str) -> str | None:
        return {"/v1/messages": "messages", "/v1/messages/count_tokens": "count_tokens"}.get(path)

    def direct_answer(self, api: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """`count_tokens`: the input tokens a `messages` request with this body would be billed (the same figure)."""
        if api != "count_tokens":
            return None
        self.counted.append(body)
        if self.count_tokens_reply is not None:
            return self.count_tokens_reply
        return {"input_tokens": estimate_tokens(body.get("messages"))}

    def authorised(self, headers: Any) -> str | None:
        return None if headers.get("x-api-key") or headers.get("authorization") else "x-api-key header is required"

    def record(self, api: str, body: dict[str, Any], headers: dict[str, str]) -> Recorded:
        return Recorded(body=body, headers=headers, at=time.time())

    def invalid(self, api: str, body: dict[str, Any]) -> str | None:
        return check_conversation(body)

    def error_body(self, status: int, message: str, kind: str | None = None) -> dict[str, Any]:
        kind = kind or _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
        return {"type": "error", "error": {"type": kind, "message": message}}

    def reply_body(self, api: str, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        n = self.next_number()
        content: list[dict[str, Any]] = [{"type": "text", "text": reply.text}] if reply.text else []
        for i, (name, args) in enumerate(reply.tool_calls):
            content.append({"type": "tool_use", "id": f"toolu_{n:04d}_{i}", "name": name, "input": args})
        out_tokens, cut = capped_output(reply, body, "max_tokens", estimate_tokens(content))
        return {
            "id": f"msg_fake_{n:06d}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model", "unknown"),
            "content": content,
            "stop_reason": "max_tokens" if cut else "tool_use" if reply.tool_calls else "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": estimate_tokens(body.get("messages")), "output_tokens": out_tokens},
        }

    def stream_events(self, api: str, body: dict[str, Any], reply: Reply) -> list[tuple[str, dict[str, Any]]]:
        """The Messages API's SSE: message_start, a start/deltas/stop per content block, message_delta, message_stop."""
        message = self.reply_body(api, body, reply)
        content, usage = message["content"], message["usage"]
        opening = {**message, "content": [], "stop_reason": None, "usage": {**usage, "output_tokens": 0}}
        events: list[tuple[str, dict[str, Any]]] = [("message_start", {"type": "message_start", "message": opening})]
        for index, block in enumerate(content):
            if block["type"] == "text":
                start: dict[str, Any] = {"type": "text", "text": ""}
                deltas = [{"type": "text_delta", "text": piece} for piece in text_pieces(block["text"])]
            else:
                start = {**block, "input": {}}
                deltas = [{"type": "input_json_delta", "partial_json": json.dumps(block["input"])}]
            events.append(
                ("content_block_start", {"type": "content_block_start", "index": index, "content_block": start})
            )
            events += [
                ("content_block_delta", {"type": "content_block_delta", "index": index, "delta": d}) for d in deltas
            ]
            events.append(("content_block_stop", {"type": "content_block_stop", "index": index}))
        closing = {"stop_reason": message["stop_reason"], "stop_sequence": None}
        events.append(
            (
                "message_delta",
                {"type": "message_delta", "delta": closing, "usage": {"output_tokens": usage["output_tokens"]}},
            )
        )
        events.append(("message_stop", {"type": "message_stop"}))
        return events

    def stream_error_events(
        self, api: str, body: dict[str, Any], fault: StreamError
    ) -> list[tuple[str, dict[str, Any]]]:
        """`message_start`, the text so far, then `event: error` with the error's type, as the API sends an
        overload that strikes after the 200 (the message is never finished)."""
        begun = [e for e in self.stream_events(api, body, Reply(text=fault.text)) if e[0] in _OPENING_EVENTS]
        error = {"type": "error", "error": {"type": fault.kind, "message": fault.message}}
        return [*begun, ("error", error)]


_OPENING_EVENTS = {"message_start", "content_block_start", "content_block_delta"}
"""Events of a reply still being written (no block or message closed yet)."""
