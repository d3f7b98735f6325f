"""One OpenTelemetry tracer provider per process, the Temporal interceptor that uses it, and Langfuse on top.

Temporal's spans (workflow, activities, signals) and Langfuse's observations (generations, tool
spans) come from the same replay-safe provider, so they share trace ids: the `trace_id` in a run's
result is the Langfuse trace that shows the whole run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from importlib import metadata
from typing import Any

import opentelemetry.trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from temporalio.contrib.opentelemetry import OpenTelemetryInterceptor, create_tracer_provider

from config.sections import LangfuseSettings

log = logging.getLogger(__name__)

TRACER_NAME = "durable_agents"
"""Instrumentation scope of the spans this product creates itself (outside Langfuse's API)."""
EXPORTED_SCOPE_PREFIXES = ("temporalio", TRACER_NAME, "langfuse")
"""Spans Langfuse receives: Temporal's, ours and its own (its default filter would drop Temporal's)."""

_provider: Any = None
_service_name = "durable-agents"
_langfuse: Any = None
_langfuse_ready = False
_capture_content = True
_interceptor: OpenTelemetryInterceptor | None = None


def tracer_provider() -> Any:
    """The process's replay-safe tracer provider, created and installed on first use."""
    global _provider
    if _provider is None:
        _provider = create_tracer_provider(resource=service_resource(_service_name))
        opentelemetry.trace.set_tracer_provider(_provider)
    return _provider


def service_version() -> str:
    """This product's version, as installed (`unknown` when run from a tree that was never installed)."""
    try:
        return metadata.version("durable-agents")
    except metadata.PackageNotFoundError:
        return "unknown"


def service_resource(service_name: str) -> Resource:
    """`service.name` and `service.version` of every span this process exports."""
    return Resource.create({"service.name": service_name, "service.version": service_version()})


CONTENT_ATTRIBUTES = frozenset(
    {
        "approval.summary",
        "langfuse.trace.input",
        "langfuse.trace.output",
        "langfuse.observation.input",
        "langfuse.observation.output",
    }
)
"""Attributes of the product's own spans that quote run content (a proposal's tool arguments, a plan)."""


class _ContentFreeTracer(opentelemetry.trace.Tracer):
    """The product's tracer with LANGFUSE_CAPTURE_CONTENT=0: spans keep their names and outcomes, not content."""

    def __init__(self, inner: opentelemetry.trace.Tracer) -> None:
        self._inner = inner

    @staticmethod
    def _strip(kwargs: dict[str, Any]) -> dict[str, Any]:
        attributes = kwargs.get("attributes")
        if attributes:
            kwargs["attributes"] = {k: v for k, v in attributes.items() if k not in CONTENT_ATTRIBUTES}
        return kwargs

    def start_span(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """As the inner tracer's, without content attributes."""
        return self._inner.start_span(name, *args, **self._strip(kwargs))

    def start_as_current_span(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """As the inner tracer's, without content attributes."""
        return self._inner.start_as_current_span(name, *args, **self._strip(kwargs))


def tracer() -> opentelemetry.trace.Tracer:
    """Tracer for spans this product creates itself (content attributes left out unless content is captured)."""
    inner = opentelemetry.trace.get_tracer(TRACER_NAME, tracer_provider=tracer_provider())
    return inner if _capture_content else _ContentFreeTracer(inner)


def handoff_span(source: str, target: str, context: str) -> None:
    """The `handoff <from> -> <to>` span every loop records where an agent hands its conversation on (a moment)."""
    attributes = {"handoff.from": source, "handoff.to": target, "handoff.context": context}
    with tracer().start_as_current_span(f"handoff {source} -> {target}", attributes=attributes):
        pass


HANDLER_SPAN_PREFIXES = ("HandleQuery:", "HandleSignal:", "ValidateUpdate:", "HandleUpdate:")
"""Temporal spans that belong to the trace of whoever sent the query/signal/update, not to the run's."""


def export_span(span: ReadableSpan) -> bool:
    """Langfuse's span filter: Temporal's spans of the run, ours and Langfuse's own.

    Handler spans are left out: each `status` query or CLI signal would otherwise appear in Langfuse as
    a trace of its own. Approvals show in the run's trace as `approval <request id>` spans instead.
    """
    scope = span.instrumentation_scope.name if span.instrumentation_scope else ""
    return scope.startswith(EXPORTED_SCOPE_PREFIXES) and not span.name.startswith(HANDLER_SPAN_PREFIXES)


def redactor(secrets: Sequence[str]) -> Callable[..., Any]:
    """A Langfuse `mask`: replaces any of `secrets` (longest first; `Settings.secrets`) found in inputs or outputs."""

    def mask(*, data: Any, **_: Any) -> Any:
        if isinstance(data, str):
            for secret in secrets:
                data = data.replace(secret, "[redacted]")
            return data
        if isinstance(data, dict):
            return {k: mask(data=v) for k, v in data.items()}
        if isinstance(data, (list, tuple)):
            return [mask(data=v) for v in data]
        return data

    return mask


def langfuse_client() -> Any:
    """The process's Langfuse client on the shared tracer provider, or None when Langfuse is off or not set up."""
    return _langfuse


def content_captured() -> bool:
    """Whether observations may hold prompts, outputs and tool arguments (LANGFUSE_CAPTURE_CONTENT)."""
    return _capture_content


def setup_tracing(
    langfuse: LangfuseSettings | None, secrets: Sequence[str] = (), service_name: str = "durable-agents"
) -> None:
    """Create the provider and, when configured, Langfuse on it; idempotent (the first call of a process decides)."""
    global _langfuse, _langfuse_ready, _capture_content, _service_name
    if _provider is None:
        _service_name = service_name
    tracer_provider()
    if _langfuse_ready:
        return
    _langfuse_ready = True
    if langfuse is not None:
        _capture_content = langfuse.capture_content
        from langfuse import Langfuse  # only processes that export pay for the import

        # The provider must exist first: Langfuse adds its exporting span processor to it.
        _langfuse = Langfuse(
            public_key=langfuse.public_key,
            secret_key=langfuse.secret_key,
            base_url=langfuse.base_url,
            tracer_provider=tracer_provider(),
            should_export_span=export_span,
            mask=redactor(secrets),
        )
        log.info("tracing: exporting to Langfuse at %s", langfuse.base_url)


def shutdown_tracing() -> None:
    """Flush what is buffered (worker exit skips atexit hooks, see worker.py)."""
    if _langfuse is not None:
        _langfuse.flush()
    if _provider is not None:
        _provider.force_flush()


def temporal_interceptor() -> OpenTelemetryInterceptor:
    """The process's one Temporal tracing interceptor: spans rooted at the workflow, so CLI-started runs have one trace.

    One instance, so a worker built on a client that has it does not add it twice (the SDK skips interceptors
    the client already has).
    """
    global _interceptor
    if _interceptor is None:
        _interceptor = OpenTelemetryInterceptor(add_temporal_spans=True)
    return _interceptor
