"""OpenAI models through `AsyncOpenAI` and the Responses API: Temporal owns retries, so the SDK's are off."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import contextmanager
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
from activities.tls import tls_context
from config.sections import OpenAISettings
from models.budget import usable_count
from models.conversation import Conversation, TextBlock, ToolCall, ToolUseBlock
from models.llm import LlmResponse
from models.pricing import cost_usd
from models.run import Usage
from telemetry.observe import llm_generation
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
                api_key=self._config.api_key,
                base_url=self._config.base_url,
                max_retries=0,
                timeout=self._timeout,
                http_client=openai.DefaultAsyncHttpxClient(verify=tls_context()),
            )
        return self._client

    async def complete(
        self, *, model: str, system: str, conversation: Conversation, tools: list[Tool], max_tokens: int
    ) -> LlmResponse:
        """One Responses API call, errors classified for Temporal's retry policy."""
        client = self.client()
        items = to_input_items(conversation)
        with llm_generation(
            name="openai.responses",
            model=model,
            system=system,
            messages=items,
            tools=[t.name for t in tools],
            max_tokens=max_tokens,
        ) as observed:
            # Plain dicts in the wire shape: the SDK's TypedDict overloads cannot see that they match.
            params: dict[str, Any] = {"model": model.split(":", 1)[1], "instructions": system, "input": items}
            if tools:
                params["tools"] = to_function_tools(tools)
            with classifying_errors():
                reply = await self._send(client, max_tokens, params)
            response = to_llm_response(
                model, reply.output, reply.usage, incomplete=reply.incomplete_details is not None
            )
            observed.finish_response(response)
        return response

    async def _send(self, client: openai.AsyncOpenAI, max_tokens: int, params: dict[str, Any]) -> Any:
        """One request; streamed, its text deltas go to the run's progress stream and the whole response comes back."""
        if not self.streaming:
            return await client.responses.create(max_output_tokens=max_tokens, **params)
        stream = await client.responses.create(max_output_tokens=max_tokens, stream=True, **params)
        final = None
        async for event in checked_events(stream, stream.response.headers):
            if isinstance(event, ResponseTextDeltaEvent):
                publish_text(event.delta)
            elif isinstance(event, ResponseCompletedEvent | ResponseIncompleteEvent):
                final = event.response
        return final


async def counted_input(client: openai.AsyncOpenAI, params: dict[str, Any]) -> int | None:
    """The Responses API's count of a request's input tokens (`responses.input_tokens.count`), or None where it gives
    none (an error answer, or a compatible server without that path)."""
    try:
        answer = await client.responses.input_tokens.count(**params)
    except openai.APIError:
        return None
    return usable_count(getattr(answer, "input_tokens", None))


@contextmanager
def classifying_errors() -> Iterator[None]:
    """Every failure of a Responses call (`call_llm`'s or the Agents SDK's) as the ApplicationError Temporal's retry
    policy reads (activities/providers/errors.py)."""
    try:
        yield
    except openai.APIError as exc:
        raise classified(exc) from None


def classified(exc: openai.APIError) -> ApplicationError:
    """An OpenAI client error for Temporal: an error response by its code/type and status, a cut or unreachable
    connection retried, an error payload inside a stream (no status: it came after the 200) by its code/type."""
    if isinstance(exc, openai.APIConnectionError):  # timeouts included
        return connection_error("openai", exc)
    kinds, message = [exc.code, exc.type], error_message(exc.body, exc.message)
    if isinstance(exc, openai.APIStatusError):
        return http_error("openai", exc.status_code, message, exc.response.headers, kinds)
    return stream_error("openai", kinds, message, None)


async def checked_events(
    stream: AsyncIterator[ResponseStreamEvent], headers: Mapping[str, str] | None
) -> AsyncIterator[ResponseStreamEvent]:
    """A Responses stream's events, for `call_llm` and the Agents SDK alike: an `error` or `response.failed` event
    raised classified, a stream that ends before its final event raised as a cut connection (worth a retry)."""
    finished = False
    async for event in stream:
        if (failure := failed_event(event, headers)) is not None:
            raise failure
        finished = finished or isinstance(event, ResponseCompletedEvent | ResponseIncompleteEvent)
        yield event
    if not finished:
        raise truncated_stream("openai", "response.completed")


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


def reply_content(output: Sequence[Any]) -> tuple[str, list[ToolCall]]:
    """A Responses reply's text and tool calls (`call_llm`'s or the Agents SDK's), each call's arguments parsed the
    one way (`ToolCall.from_json`: unreadable ones are kept and refused, never guessed at)."""
    calls = [
        ToolCall.from_json(item.call_id, item.name, item.arguments) for item in output if item.type == "function_call"
    ]
    text = "".join(
        getattr(part, "text", "") or ""
        for item in output
        if item.type == "message"
        for part in item.content
        if getattr(part, "type", "") == "output_text"
    )
    return text, calls


def to_llm_response(model: str, output: Sequence[Any], usage: Any, *, incomplete: bool = False) -> LlmResponse:
    """A Responses reply (its output items and usage) as an `LlmResponse`: what `call_llm` returns, and what every
    OpenAI generation records."""
    text, calls = reply_content(output)
    tokens_in = usage.input_tokens if usage else 0
    tokens_out = usage.output_tokens if usage else 0
    return LlmResponse(
        model=model,
        text=text,
        tool_calls=calls,
        stop_reason="tool_use" if calls else ("max_tokens" if incomplete else "end_turn"),
        usage=Usage(
            llm_calls=1,
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            cost_usd=cost_usd(model, tokens_in, tokens_out),
        ),
    )
