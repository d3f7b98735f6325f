"""OpenAI models through `AsyncOpenAI` and the Responses API: Temporal owns retries, so the SDK's are off."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import openai
from openai.types.responses import (
    ResponseCompletedEvent,
    ResponseErrorEvent,
    ResponseFailedEvent,
    ResponseIncompleteEvent,
    ResponseStreamEvent,
    ResponseTextDeltaEvent,
)
from temporalio.exceptions import ApplicationError

from activities.progress_publisher import publish_text
from activities.providers.errors import (
    config_error,
    connection_error,
    error_message,
    http_error,
    stream_error,
    truncated_stream,
)
from config.sections import OpenAISettings
from models.conversation import Conversation, TextBlock, ToolCall, ToolUseBlock
from models.llm import LlmResponse
from models.pricing import cost_usd
from models.run import Usage
from telemetry.observe import generation
from tools.registry import Tool


def to_input_items(conversation: Conversation) -> list[dict[str, Any]]:
    """Provider-neutral messages as Responses API input items (tool calls and results are items of their own)."""
    items: list[dict[str, Any]] = []
    for message in conversation.messages:
        for block in message.content:
            if isinstance(block, TextBlock):
                items.append({"role": message.role, "content": block.text})
            elif isinstance(block, ToolUseBlock):
                items.append(
                    {
                        "type": "function_call",
                        "call_id": block.id,
                        "name": block.name,
                        "arguments": json.dumps(block.arguments),
                    }
                )
            else:
                items.append({"type": "function_call_output", "call_id": block.tool_use_id, "output": block.content})
    return items


def to_function_tools(tools: list[Tool]) -> list[dict[str, Any]]:
    """Tool declarations as Responses API function tools (not strict: the registry validates arguments)."""
    return [
        {
            "type": "function",
            "name": t.name,
            "description": t.description,
            "parameters": t.input_schema(),
            "strict": False,
        }
        for t in tools
    ]


class OpenAIProvider:
    """`LlmProvider` for `openai:` models; the client is built lazily so a worker without a key still starts."""

    def __init__(self, config: OpenAISettings, timeout_seconds: float = 120.0, *, streaming: bool = True) -> None:
        self._config = config
        self._timeout = timeout_seconds
        self.streaming = streaming
        """Stream replies (Responses API events) and publish their text as it comes; off: one plain request."""
        self._client: openai.AsyncOpenAI | None = None

    def client(self) -> openai.AsyncOpenAI:
        """The shared client (also used by the Agents SDK engine); a missing key is a configuration error."""
        if self._client is None:
            if not self._config.configured:
                raise config_error("OPENAI_API_KEY is not set in the worker's environment")
            self._client = openai.AsyncOpenAI(
                api_key=self._config.api_key, base_url=self._config.base_url, max_retries=0, timeout=self._timeout
            )
        return self._client

    async def complete(
        self, *, model: str, system: str, conversation: Conversation, tools: list[Tool], max_tokens: int
    ) -> LlmResponse:
        """One Responses API call, errors classified for Temporal's retry policy."""
        client = self.client()
        items = to_input_items(conversation)
        observed_input = {"system": system, "input": items, "tools": [t.name for t in tools]}
        with generation(
            name="openai.responses",
            model=model,
            input=observed_input,
            model_parameters={"max_output_tokens": max_tokens},
        ) as observed:
            try:
                # Plain dicts in the wire shape: the SDK's TypedDict overloads cannot see that they match.
                params: dict[str, Any] = {"model": model.split(":", 1)[1], "instructions": system, "input": items}
                if tools:
                    params["tools"] = to_function_tools(tools)
                reply = await self._send(client, max_tokens, params)
            except openai.APIError as exc:
                raise classified(exc) from None
            response = _to_response(model, reply)
            observed.finish_response(response)
        return response

    async def _send(self, client: openai.AsyncOpenAI, max_tokens: int, params: dict[str, Any]) -> Any:
        """One request; streamed, its text deltas go to the run's progress stream and the whole response comes back."""
        if not self.streaming:
            return await client.responses.create(max_output_tokens=max_tokens, **params)
        stream = await client.responses.create(max_output_tokens=max_tokens, stream=True, **params)
        final = None
        async for event in stream:
            if isinstance(event, ResponseTextDeltaEvent):
                publish_text(event.delta)
            elif isinstance(event, ResponseCompletedEvent | ResponseIncompleteEvent):
                final = event.response
            elif (failure := failed_event(event, stream.response.headers)) is not None:
                raise failure
        if final is None:
            raise truncated_stream("openai", "response.completed")
        return final


def classified(exc: openai.APIError) -> ApplicationError:
    """An OpenAI client error for Temporal: an error response by its code/type and status, a cut or unreachable
    connection retried, an error payload inside a stream (no status: it came after the 200) by its code/type."""
    if isinstance(exc, openai.APIConnectionError):  # timeouts included
        return connection_error("openai", exc)
    kinds, message = [exc.code, exc.type], error_message(exc.body, exc.message)
    if isinstance(exc, openai.APIStatusError):
        return http_error("openai", exc.status_code, message, exc.response.headers, kinds)
    return stream_error("openai", kinds, message, None)


def failed_event(event: ResponseStreamEvent, headers: Mapping[str, str] | None) -> ApplicationError | None:
    """The classified error of a Responses stream's `error` or `response.failed` event; None for other events."""
    if isinstance(event, ResponseErrorEvent):
        return stream_error("openai", [event.code], event.message, headers)
    if isinstance(event, ResponseFailedEvent):
        error = event.response.error
        if error is None:
            return stream_error("openai", [], "the response failed without saying why", headers)
        return stream_error("openai", [error.code, error.type], error.message, headers)
    return None


def _to_response(model: str, reply: Any) -> LlmResponse:
    calls = [
        ToolCall(id=item.call_id, name=item.name, arguments=_arguments(item.arguments))
        for item in reply.output
        if item.type == "function_call"
    ]
    tokens_in = reply.usage.input_tokens if reply.usage else 0
    tokens_out = reply.usage.output_tokens if reply.usage else 0
    incomplete = getattr(reply, "incomplete_details", None)
    stop = "tool_use" if calls else ("max_tokens" if incomplete is not None else "end_turn")
    return LlmResponse(
        model=model,
        text=reply.output_text or "",
        tool_calls=calls,
        stop_reason=stop,
        usage=Usage(
            llm_calls=1,
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            cost_usd=cost_usd(model, tokens_in, tokens_out),
        ),
    )


def _arguments(raw: str) -> dict[str, Any]:
    # A model may send malformed JSON; an empty dict lets the registry's check tell it what is expected.
    try:
        parsed = json.loads(raw or "{}")
    except json.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}
