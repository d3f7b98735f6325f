"""A scripted stand-in for the OpenAI API (Responses and Chat Completions) on 127.0.0.1.

The real `openai` client (and the OpenAI Agents SDK on top of it) talks to it through
`OPENAI_BASE_URL` (`<url>/v1`). Like `FakeAnthropic`, it answers from a script (replies,
HTTP faults, in-stream errors, cut streams, delays) or, once the script is empty, from a responder; it
records every request.
The response shapes follow the installed SDK's types (`openai.types.responses.Response`,
`openai.types.chat.ChatCompletion`) so the real client parses them.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from devstack.scripted_http import (
    Fault,
    Reply,
    ScriptedServer,
    StreamError,
    Truncated,
    capped_output,
    estimate_tokens,
    text_pieces,
)

__all__ = ["FakeOpenAI", "Fault", "OpenAIRecorded", "Reply", "StreamError", "Truncated"]

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_api_key",
    403: "permission_denied",
    404: "not_found",
    408: "timeout",
    409: "conflict",
    429: "rate_limit_exceeded",
}
"""The error code a status gets (a 5xx: `server_error`); the worker classifies by it where it knows it."""
ROUTES = {"/v1/responses": "responses", "/v1/chat/completions": "chat", "/v1/responses/input_tokens": "input_tokens"}


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
            return list(self.body.get("messages", []))
        raw = self.body.get("input", [])
        return [{"role": "user", "content": raw}] if isinstance(raw, str) else raw

    def tool_outputs(self) -> list[dict[str, str]]:
        """Every tool result sent back to the model, as `{"call_id", "output"}`."""
        if self.api == "chat":
            return [
                {"call_id": m["tool_call_id"], "output": m["content"]} for m in self.items if m.get("role") == "tool"
            ]
        return [
            {"call_id": i["call_id"], "output": i["output"]}
            for i in self.items
            if isinstance(i, dict) and i.get("type") == "function_call_output"
        ]

    @property
    def tool_names(self) -> list[str]:
        """Names of the tools the request offered the model."""
        return [t.get("name") or t.get("function", {}).get("name") for t in self.body.get("tools", [])]


class FakeOpenAI(ScriptedServer):
    """Responses and Chat Completions under `/v1` (and Responses input-token counting, outside the script); use as
    a context manager or call start()/stop()."""

    name = "fake-openai"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.counted: list[dict[str, Any]] = []
        """Bodies of input-token counting requests (not in `requests`: nothing is generated or billed for them)."""
        self.count_reply: dict[str, Any] | None = None
        """When set, counting answers 200 with this payload instead of `{"input_tokens": N}`."""

    @property
    def url(self) -> str:
        """Base URL for OPENAI_BASE_URL (the SDK expects the `/v1` prefix in it)."""
        return f"{self.address}/v1"

    def route(self, path: str) -> str | None:
        return ROUTES.get(path)

    def direct_answer(self, api: str, body: dict[str, Any]) -> dict[str, Any] | None:
        """`input_tokens`: the input tokens a `responses` request with this body would be billed (the same figure)."""
        if api != "input_tokens":
            return None
        self.counted.append(body)
        if self.count_reply is not None:
            return self.count_reply
        return {"object": "response.input_tokens", "input_tokens": estimate_tokens(body.get("input"))}

    def authorised(self, headers: Any) -> str | None:
        ok = (headers.get("authorization") or "").startswith("Bearer ")
        return None if ok else "an Authorization: Bearer header is required"

    def record(self, api: str, body: dict[str, Any], headers: dict[str, str]) -> OpenAIRecorded:
        return OpenAIRecorded(api=api, body=body, headers=headers, at=time.time())

    def invalid(self, api: str, body: dict[str, Any]) -> str | None:
        streaming_chat = api == "chat" and body.get("stream")
        return "fake server: Chat Completions streaming is not supported" if streaming_chat else None

    def error_body(self, status: int, message: str, kind: str | None = None) -> dict[str, Any]:
        kind = kind or _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
        return {"error": {"message": message, "type": kind, "param": None, "code": kind}}

    def reply_body(self, api: str, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        return self.responses_body(body, reply) if api == "responses" else self.chat_body(body, reply)

    def responses_body(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        """A `Response` object as the Responses API returns it."""
        n = self.next_number()
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
        tokens_out, _ = capped_output(reply, body, "max_output_tokens", estimate_tokens(output))
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
        n = self.next_number()
        calls = [
            {"id": f"call_{n:04d}_{i}", "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}
            for i, (name, args) in enumerate(reply.tool_calls)
        ]
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
        if calls:
            message["tool_calls"] = calls
        tokens_in = estimate_tokens(body.get("messages"))
        tokens_out, _ = capped_output(reply, body, "max_completion_tokens", estimate_tokens(message))
        return {
            "id": f"chatcmpl-fake-{n:06d}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "unknown"),
            "choices": [
                {"index": 0, "message": message, "finish_reason": "tool_calls" if calls else "stop", "logprobs": None}
            ],
            "usage": {
                "prompt_tokens": tokens_in,
                "completion_tokens": tokens_out,
                "total_tokens": tokens_in + tokens_out,
            },
        }

    def stream_events(self, api: str, body: dict[str, Any], reply: Reply) -> list[tuple[str, dict[str, Any]]]:
        """The Responses API's stream: created, each output item added/streamed/done, then completed."""
        response = self.responses_body(body, reply)
        events: list[tuple[str, dict[str, Any]]] = []

        def emit(kind: str, **fields: Any) -> None:
            events.append((kind, {"type": kind, "sequence_number": len(events), **fields}))

        emit("response.created", response={**response, "status": "in_progress", "output": [], "usage": None})
        for index, item in enumerate(response["output"]):
            if item["type"] == "message":
                text = item["content"][0]["text"]
                emit(
                    "response.output_item.added",
                    output_index=index,
                    item={**item, "status": "in_progress", "content": []},
                )
                part = {"type": "output_text", "text": "", "annotations": []}
                ids = {"item_id": item["id"], "output_index": index, "content_index": 0}
                emit("response.content_part.added", **ids, part=part)
                for piece in text_pieces(text):
                    emit("response.output_text.delta", **ids, delta=piece, logprobs=[])
                emit("response.output_text.done", **ids, text=text, logprobs=[])
                emit("response.content_part.done", **ids, part={**part, "text": text})
            else:
                opening = {**item, "arguments": "", "status": "in_progress"}
                emit("response.output_item.added", output_index=index, item=opening)
                ids = {"item_id": item["id"], "output_index": index}
                emit("response.function_call_arguments.delta", **ids, delta=item["arguments"])
                emit("response.function_call_arguments.done", **ids, arguments=item["arguments"], name=item["name"])
            emit("response.output_item.done", output_index=index, item=item)
        emit("response.completed", response=response)
        return events

    def stream_error_events(
        self, api: str, body: dict[str, Any], fault: StreamError
    ) -> list[tuple[str, dict[str, Any]]]:
        """`response.created`, the text so far, then an `error` event (`code`, `message`), or with `fault.failed`
        `response.failed` whose `response.error` carries the code, as the Responses API ends a failed stream."""
        begun = [e for e in self.stream_events(api, body, Reply(text=fault.text)) if e[0] in _OPENING_EVENTS]
        number = len(begun)
        if not fault.failed:
            error = {"type": "error", "code": fault.kind, "message": fault.message, "param": None}
            return [*begun, ("error", {**error, "sequence_number": number})]
        opening = begun[0][1]["response"]
        failed = {
            **opening,
            "status": "failed",
            "error": {"code": fault.kind, "message": fault.message},
            "usage": None,
        }
        return [*begun, ("response.failed", {"type": "response.failed", "sequence_number": number, "response": failed})]


_OPENING_EVENTS = {
    "response.created",
    "response.output_item.added",
    "response.content_part.added",
    "response.output_text.delta",
}
"""Events of a response still being written (no part, item or response finished yet)."""
