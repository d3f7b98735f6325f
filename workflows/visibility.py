"""What a run shows outside itself: its trace (id, Langfuse user and session) and its search attributes."""

from __future__ import annotations

import json
from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    # The run's trace context lives in OpenTelemetry's module state, which the tracing plugin shares.
    import opentelemetry.baggage
    import opentelemetry.context
    import opentelemetry.trace

    from models import search_attributes as sa
    from telemetry.tracing import content_captured, tracer

TRACE_INPUT = "langfuse.trace.input"
TRACE_OUTPUT = "langfuse.trace.output"
OBSERVATION_INPUT = "langfuse.observation.input"
OBSERVATION_OUTPUT = "langfuse.observation.output"


def as_attribute(value: Any) -> str:
    """A JSON text for a span attribute (Langfuse shows JSON input and output formatted)."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)


def observation_io(*, input: Any = None, output: Any = None) -> dict[str, str]:
    """Span attributes Langfuse shows as an observation's Input and Output (JSON), for whichever is given.

    None with LANGFUSE_CAPTURE_CONTENT=0: then spans keep names and outcomes, never content.
    """
    attributes: dict[str, str] = {}
    if not content_captured():
        return attributes
    if input is not None:
        attributes[OBSERVATION_INPUT] = as_attribute(input)
    if output is not None:
        attributes[OBSERVATION_OUTPUT] = as_attribute(output)
    return attributes


def set_trace_input(value: Any) -> None:
    """The run's input as its Langfuse trace's input: set once, on the workflow span, by the first generation."""
    if not content_captured():
        return
    opentelemetry.trace.get_current_span().set_attribute(TRACE_INPUT, as_attribute(value))


def set_trace_output(value: Any) -> None:
    """The run's result as its trace's output, on a `run result` span (the workflow span has ended by then).

    The tracing plugin's provider is replay-safe: a replayed workflow task exports no second one.
    """
    attributes = {TRACE_OUTPUT: as_attribute(value), OBSERVATION_OUTPUT: as_attribute(value)}
    with tracer().start_as_current_span("run result", attributes=attributes):
        pass


def current_trace_id() -> str:
    """The OpenTelemetry trace id of this run (the workflow span's), as 32 lowercase hex digits."""
    context = opentelemetry.trace.get_current_span().get_span_context()
    if context.is_valid:
        return format(context.trace_id, "032x")
    # Tracing plugin absent: a stable id still lets callers correlate logs.
    return workflow.uuid4().hex


def tag_trace(*, user_id: str | None, session_id: str) -> None:
    """Langfuse's user and session ids (and the trace name) on this run's trace.

    Set on the workflow span, and as OpenTelemetry baggage in the run's context: the tracing plugin
    copies baggage into every activity's headers, and Langfuse copies `langfuse_*` baggage onto each
    span it sees start, so every generation and tool span of the run carries the same ids.
    """
    fields = {"session_id": session_id, "trace_name": workflow.info().workflow_type}
    if user_id:
        fields["user_id"] = user_id
    span = opentelemetry.trace.get_current_span()
    span.set_attribute("session.id", session_id)
    span.set_attribute("langfuse.trace.name", fields["trace_name"])
    if user_id:
        span.set_attribute("user.id", user_id)
    context = opentelemetry.context.get_current()
    for key, value in fields.items():
        context = opentelemetry.baggage.set_baggage(f"langfuse_{key}", value, context)
    opentelemetry.context.attach(context)  # lives as long as the run's task; never detached on purpose


def publish_search_attributes(
    *, status: str | None = None, agent: str | None = None, pattern: str | None = None, customer_id: str | None = None
) -> None:
    """Upsert whichever of AgentStatus / AgentName / AgentPattern / CustomerId are given."""
    updates = [
        key.value_set(value)
        for key, value in (
            (sa.AGENT_STATUS, status),
            (sa.AGENT_NAME, agent),
            (sa.AGENT_PATTERN, pattern),
            (sa.CUSTOMER_ID, customer_id),
        )
        if value is not None
    ]
    if updates:
        workflow.upsert_search_attributes(updates)
