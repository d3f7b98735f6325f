"""One OpenTelemetry tracer provider per process, and the Temporal plugin that uses it."""

from __future__ import annotations

import opentelemetry.trace
from temporalio.contrib.opentelemetry import OpenTelemetryPlugin, create_tracer_provider

_provider = None


def tracer_provider():
    """The process's replay-safe tracer provider, created and installed on first use."""
    global _provider
    if _provider is None:
        _provider = create_tracer_provider()
        opentelemetry.trace.set_tracer_provider(_provider)
    return _provider


def temporal_plugins() -> list:
    """Plugins every client gets: Temporal spans rooted at the workflow, so CLI-started runs have one trace."""
    tracer_provider()
    return [OpenTelemetryPlugin(add_temporal_spans=True)]
