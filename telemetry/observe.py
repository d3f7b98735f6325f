"""Langfuse observations for what happens inside activities: each LLM call a generation, each tool call a span.

They are started inside the activity's own span (the Temporal plugin makes it current), so they land in
the run's trace. With Langfuse off every helper here is a no-op that costs nothing. With
LANGFUSE_CAPTURE_CONTENT=0 they keep names, model, usage, cost, timing and outcome, but no prompt, output,
tool argument or message text (an error's message may quote the data it failed on).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from models.llm import LlmResponse
from telemetry.tracing import content_captured, langfuse_client

WITHHELD = "[content not captured: LANGFUSE_CAPTURE_CONTENT=0]"


def _content(value: Any) -> Any:
    """`value`, or nothing when content must stay out of traces."""
    return value if content_captured() else None


def _message(text: str) -> str:
    return text[:1000] if content_captured() else WITHHELD


class Generation:
    """One LLM call as Langfuse sees it; `finish` once the reply (or the failure) is known."""

    def __init__(self, observation: Any = None) -> None:
        self._observation = observation

    def finish(self, *, output: Any, input_tokens: int, output_tokens: int, cost_usd: float) -> None:
        """Record the reply, token usage and cost."""
        if self._observation is not None:
            self._observation.update(
                output=_content(output),
                usage_details={"input": input_tokens, "output": output_tokens, "total": input_tokens + output_tokens},
                cost_details={"total": cost_usd},
            )

    def finish_response(self, response: LlmResponse) -> None:
        """Record a provider adapter's reply: its text, tool calls and stop reason, usage and cost."""
        self.finish(
            output={
                "text": response.text,
                "tool_calls": [c.model_dump() for c in response.tool_calls],
                "stop_reason": response.stop_reason,
            },
            input_tokens=response.usage.input_tokens,
            output_tokens=response.usage.output_tokens,
            cost_usd=response.usage.cost_usd,
        )

    def fail(self, message: str) -> None:
        """Mark the call failed with the provider's message (the exception still propagates)."""
        if self._observation is not None:
            self._observation.update(level="ERROR", status_message=_message(message))


class ToolObservation:
    """One tool call as Langfuse sees it."""

    def __init__(self, observation: Any = None) -> None:
        self._observation = observation

    def finish(self, output: str, is_error: bool) -> None:
        """Record what the tool returned; an error result is a warning, the model is told and may go on."""
        if self._observation is not None:
            self._observation.update(
                output=_content(output),
                **({"level": "WARNING", "status_message": _message(output)} if is_error else {}),
            )


@contextmanager
def generation(
    *, name: str, model: str, input: Any, model_parameters: dict[str, Any] | None = None
) -> Iterator[Generation]:
    """A Langfuse generation around one provider call (model is `provider:model`; Langfuse gets the bare name)."""
    client = langfuse_client()
    if client is None:
        yield Generation()
        return
    with client.start_as_current_observation(
        name=name,
        as_type="generation",
        model=model.split(":", 1)[-1],
        input=_content(input),
        model_parameters=model_parameters,
        metadata={"provider": model.split(":", 1)[0]},
    ) as observation:
        record = Generation(observation)
        try:
            yield record
        except BaseException as exc:
            record.fail(f"{type(exc).__name__}: {exc}")
            raise


@contextmanager
def llm_generation(
    *, name: str, model: str, system: Any, messages: Any, tools: Sequence[str], max_tokens: int | None
) -> Iterator[Generation]:
    """The generation of one model call, in the one shape every loop and provider records: the input as system
    prompt, messages (the API's own items) and tool names (their schemas are in the agent's pinned spec), the
    output allowance as `max_tokens`; finish it with `finish_response`."""
    observed_input = {"system": system, "messages": messages, "tools": list(tools)}
    parameters = {"max_tokens": max_tokens} if max_tokens is not None else None
    with generation(name=name, model=model, input=observed_input, model_parameters=parameters) as observed:
        yield observed


@contextmanager
def tool_call(*, name: str, arguments: dict[str, Any], idempotency_key: str | None = None) -> Iterator[ToolObservation]:
    """A Langfuse tool span around one tool handler."""
    client = langfuse_client()
    if client is None:
        yield ToolObservation()
        return
    metadata = {"idempotency_key": idempotency_key} if idempotency_key else None
    with client.start_as_current_observation(
        name=f"tool {name}", as_type="tool", input=_content(arguments), metadata=metadata
    ) as observation:
        record = ToolObservation(observation)
        try:
            yield record
        except BaseException as exc:
            observation.update(level="ERROR", status_message=_message(f"{type(exc).__name__}: {exc}"))
            raise
