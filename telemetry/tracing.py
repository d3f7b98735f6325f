"""One OpenTelemetry tracer provider per process, the Temporal plugin that uses it, and Langfuse on top.

Temporal's spans (workflow, activities, signals) and Langfuse's observations (generations, tool
spans) come from the same replay-safe provider, so they share trace ids: the `trace_id` in a run's
result is the Langfuse trace that shows the whole run.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import opentelemetry.trace
from opentelemetry.sdk.trace import ReadableSpan
from temporalio.contrib.opentelemetry import OpenTelemetryPlugin, create_tracer_provider

from models.errors import ConfigError

log = logging.getLogger(__name__)

TRACER_NAME = "durable_agents"
"""Instrumentation scope of the spans this product creates itself (outside Langfuse's API)."""
EXPORTED_SCOPE_PREFIXES = ("temporalio", TRACER_NAME, "langfuse")
"""Spans Langfuse receives: Temporal's, ours and its own (its default filter would drop Temporal's)."""

_provider = None
_langfuse: Any = None
_langfuse_ready = False


@dataclass(frozen=True)
class LangfuseConfig:
    """Where and as whom to send traces."""

    public_key: str
    secret_key: str
    base_url: str

    def __repr__(self) -> str:  # keep the secret out of any log line that prints the config
        return f"LangfuseConfig(public_key={self.public_key!r}, base_url={self.base_url!r})"


def langfuse_config(env: Mapping[str, str] | None = None) -> LangfuseConfig | None:
    """Langfuse settings from the environment; None (tracing export off) when both keys are absent."""
    env = os.environ if env is None else env
    public, secret = env.get("LANGFUSE_PUBLIC_KEY") or "", env.get("LANGFUSE_SECRET_KEY") or ""
    if not public and not secret:
        return None
    if not public or not secret:
        missing = "LANGFUSE_PUBLIC_KEY" if not public else "LANGFUSE_SECRET_KEY"
        raise ConfigError(
            f"{missing} is not set but its pair is: set both Langfuse keys, or neither to turn export off"
        )
    base_url = env.get("LANGFUSE_BASE_URL") or env.get("LANGFUSE_HOST") or "https://cloud.langfuse.com"
    if not base_url.startswith(("http://", "https://")):
        raise ConfigError(f"LANGFUSE_BASE_URL must be an http(s) URL, got {base_url!r}")
    return LangfuseConfig(public_key=public, secret_key=secret, base_url=base_url.rstrip("/"))


def tracer_provider():
    """The process's replay-safe tracer provider, created and installed on first use."""
    global _provider
    if _provider is None:
        _provider = create_tracer_provider()
        opentelemetry.trace.set_tracer_provider(_provider)
    return _provider


def tracer() -> opentelemetry.trace.Tracer:
    """Tracer for spans this product creates itself."""
    return tracer_provider().get_tracer(TRACER_NAME)


HANDLER_SPAN_PREFIXES = ("HandleQuery:", "HandleSignal:", "ValidateUpdate:", "HandleUpdate:")
"""Temporal spans that belong to the trace of whoever sent the query/signal/update, not to the run's."""


def export_span(span: ReadableSpan) -> bool:
    """Langfuse's span filter: Temporal's spans of the run, ours and Langfuse's own.

    Handler spans are left out: each `status` query or CLI signal would otherwise appear in Langfuse as
    a trace of its own. Approvals show in the run's trace as `approval <request id>` spans instead.
    """
    scope = span.instrumentation_scope.name if span.instrumentation_scope else ""
    return scope.startswith(EXPORTED_SCOPE_PREFIXES) and not span.name.startswith(HANDLER_SPAN_PREFIXES)


def _secret_values(env: Mapping[str, str]) -> list[str]:
    names = re.compile(r"(KEY|SECRET|TOKEN|PASSWORD)", re.IGNORECASE)
    return sorted({v for k, v in env.items() if names.search(k) and len(v) >= 8}, key=len, reverse=True)


def redactor(env: Mapping[str, str] | None = None):
    """A Langfuse `mask`: replaces any secret from the worker's environment found in inputs or outputs."""
    secrets = _secret_values(os.environ if env is None else env)

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
    """The process's Langfuse client on the shared tracer provider, or None when LANGFUSE_* keys are absent."""
    global _langfuse, _langfuse_ready
    if not _langfuse_ready:
        _langfuse_ready = True
        config = langfuse_config()
        if config is not None:
            from langfuse import Langfuse  # only processes that export pay for the import

            # The provider must exist first: Langfuse adds its exporting span processor to it.
            _langfuse = Langfuse(
                public_key=config.public_key,
                secret_key=config.secret_key,
                base_url=config.base_url,
                tracer_provider=tracer_provider(),
                should_export_span=export_span,
                mask=redactor(),
            )
            log.info("tracing: exporting to Langfuse at %s", config.base_url)
    return _langfuse


def setup_tracing() -> None:
    """Create the provider and, when configured, Langfuse; idempotent, called by every client."""
    tracer_provider()
    langfuse_client()


def shutdown_tracing() -> None:
    """Flush what is buffered (worker exit skips atexit hooks, see worker.py)."""
    if _langfuse is not None:
        _langfuse.flush()
    if _provider is not None:
        _provider.force_flush()


def temporal_plugins() -> list:
    """Plugins every client gets: Temporal spans rooted at the workflow, so CLI-started runs have one trace."""
    setup_tracing()
    return [OpenTelemetryPlugin(add_temporal_spans=True)]
