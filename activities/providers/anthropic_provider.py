"""Claude through `AsyncAnthropic`: Temporal owns retries, so the SDK's are off."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import anthropic
import httpx2  # the SDK's own transport (a dependency of anthropic): a cut stream raises its errors unwrapped
from temporalio.exceptions import ApplicationError

from activities.progress_publisher import publish_text
from activities.providers.errors import (
    config_error,
    connection_error,
    error_kinds,
    error_message,
    http_error,
    truncated_stream,
)
from activities.tls import tls_context
from config.sections import AnthropicSettings
from models.budget import input_estimate, usable_count
from models.conversation import Conversation, TextBlock, ToolCall, ToolResultBlock, ToolUseBlock
from models.llm import LlmResponse
from models.pricing import cost_usd
from models.run import Usage
from telemetry.observe import llm_generation
from tools.registry import Tool


def to_wire_messages(conversation: Conversation) -> list[dict[str, Any]]:
    """Provider-neutral messages in the Messages API's shape."""
    return [{"role": m.role, "content": [_wire_block(b) for b in m.content]} for m in conversation.messages]


def _wire_block(block: TextBlock | ToolUseBlock | ToolResultBlock) -> dict[str, Any]:
    if isinstance(block, TextBlock):
        return {"type": "text", "text": block.text}
    if isinstance(block, ToolUseBlock):
        return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.arguments}
    return {
        "type": "tool_result",
        "tool_use_id": block.tool_use_id,
        "content": block.content,
        "is_error": block.is_error,
    }


def to_wire_tools(tools: list[Tool]) -> list[dict[str, Any]]:
    """Tool declarations in the Messages API's shape."""
    return [{"name": t.name, "description": t.description, "input_schema": t.input_schema()} for t in tools]


class AnthropicProvider:
    """`LlmProvider` for Claude; the client is built lazily so a worker without a key still starts."""

    def __init__(self, config: AnthropicSettings, timeout_seconds: float = 120.0, *, streaming: bool = True) -> None:
        self._config = config
        self._timeout = timeout_seconds
        self._streaming = streaming
        """Stream the reply (Messages SSE) and publish its text as it comes; off: one plain request."""
        self._client: anthropic.AsyncAnthropic | None = None

    def _client_or_raise(self) -> anthropic.AsyncAnthropic:
        if self._client is None:
            if not self._config.configured:
                raise config_error("ANTHROPIC_API_KEY is not set in the worker's environment")
            self._client = anthropic.AsyncAnthropic(
                api_key=self._config.api_key,
                auth_token=self._config.auth_token,
                base_url=self._config.base_url,
                max_retries=0,
                timeout=self._timeout,
                http_client=anthropic.DefaultAsyncHttpxClient(verify=tls_context()),
            )
        return self._client

    async def complete(
        self, *, model: str, system: str, conversation: Conversation, tools: list[Tool], max_tokens: int
    ) -> LlmResponse:
        """One Messages API call, errors classified for Temporal's retry policy."""
        client = self._client_or_raise()
        params = request_params(model, system, conversation, tools)
        with llm_generation(
            name="anthropic.messages",
            model=model,
            system=system,
            messages=params["messages"],
            tools=[t.name for t in tools],
            max_tokens=max_tokens,
        ) as observed:
            with classifying_errors():
                message = await self._send(client, max_tokens, params)
            response = _to_response(model, message)
            observed.finish_response(response)
        return response

    async def counted(self, params: dict[str, Any]) -> int | None:
        """The API's count of a request's input tokens (`messages.count_tokens`), or None where it gives none."""
        try:
            answer = await self._client_or_raise().messages.count_tokens(**params)
        except anthropic.APIError:  # an error answer, no answer, or one the SDK could not read
            return None
        # Some Anthropic-compatible proxies answer this path with a 200 of another shape: the SDK does not check it.
        return usable_count(getattr(answer, "input_tokens", None))

    async def _send(self, client: anthropic.AsyncAnthropic, max_tokens: int, params: dict[str, Any]) -> Any:
        """One request; streamed, its text deltas go to the run's progress stream and the whole message comes back."""
        if not self._streaming:
            return await client.messages.create(max_tokens=max_tokens, **params)
        async with client.messages.stream(max_tokens=max_tokens, **params) as stream:
            finished = False
            async for event in stream:
                if event.type == "content_block_delta" and event.delta.type == "text_delta":
                    publish_text(event.delta.text)
                finished = finished or event.type == "message_stop"
            # A stream that ends early is not an error to the SDK: it hands over the message so far (or fails
            # an assertion when there was none). Only `message_stop` says the reply is whole.
            if not finished:
                raise truncated_stream("anthropic", "message_stop")
            return await stream.get_final_message()


def request_params(model: str, system: str, conversation: Conversation, tools: list[Tool]) -> dict[str, Any]:
    """A Messages request as plain dicts in the wire shape (the SDK's TypedDict overloads cannot see that they match)."""
    params: dict[str, Any] = {
        "model": model.split(":", 1)[1],
        "system": system,
        "messages": to_wire_messages(conversation),
    }
    if tools:  # the API refuses an empty tools list
        params["tools"] = to_wire_tools(tools)
    return params


@contextmanager
def classifying_errors() -> Iterator[None]:
    """Every failure of a Messages call as the ApplicationError Temporal's retry policy reads (activities/providers/errors.py)."""
    try:
        yield
    except anthropic.APIStatusError as exc:  # an error response, or an `error` event after a 200
        raise classified(exc) from None
    except (anthropic.APIConnectionError, anthropic.APITimeoutError) as exc:
        raise connection_error("anthropic", exc) from None
    except httpx2.TransportError as exc:  # cut or timed out mid-stream: the SDK lets its transport's raise
        raise connection_error("anthropic", exc) from None


def classified(exc: anthropic.APIStatusError) -> ApplicationError:
    """An error response, or an error event inside a stream that answered HTTP 200: its error type decides."""
    message = error_message(exc.body, exc.message)
    return http_error("anthropic", exc.status_code, message, exc.response.headers, error_kinds(exc.body))


def _to_response(model: str, message: Any) -> LlmResponse:
    text = "".join(b.text for b in message.content if b.type == "text")
    calls = [
        ToolCall(id=b.id, name=b.name, arguments=dict(b.input or {})) for b in message.content if b.type == "tool_use"
    ]
    tokens_in, tokens_out = message.usage.input_tokens, message.usage.output_tokens
    return LlmResponse(
        model=model,
        text=text,
        tool_calls=calls,
        stop_reason=message.stop_reason or "end_turn",
        usage=Usage(
            llm_calls=1,
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            cost_usd=cost_usd(model, tokens_in, tokens_out),
        ),
    )


async def count_input_tokens(
    provider: AnthropicProvider, *, model: str, system: str, conversation: Conversation, tools: list[Tool]
) -> int:
    """The input estimate of the next Messages request (models/budget.py `input_estimate`): the API's count, or
    where counting fails the serialised request's."""
    params = request_params(model, system, conversation, tools)
    return input_estimate(whole=params, counted=await provider.counted(params))
