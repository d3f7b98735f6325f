"""Connecting to Temporal the same way everywhere: the settings' cluster, through AgentServicePlugin."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import RPCError

from config.cli import temporal_unreachable
from config.settings import Settings
from telemetry import metrics

HISTOGRAM_BUCKETS: Mapping[str, Sequence[float]] = {
    metrics.RUN_COST: [0.001, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 20.0],
    metrics.RUN_TOKENS: [1_000, 10_000, 50_000, 100_000, 200_000, 500_000, 1_000_000],
    metrics.RUN_STEPS: [1, 2, 5, 10, 20, 50, 100, 300, 1_000],
    metrics.APPROVAL_WAIT: [10, 60, 600, 3_600, 14_400, 86_400, 604_800],
}
"""The SDK's default buckets (50 ms to 10 s) suit latencies, not dollars, tokens, steps or days of waiting."""


async def connect(settings: Settings, **overrides: Any) -> Client:
    """A client for the cluster `settings.temporal` names (TEMPORAL_* read by `temporalio.envconfig`).

    Defaults follow envconfig (localhost:7233, namespace `default`); `overrides` replace any connect
    argument (tests pass the address of their own server). The plugin gives the client the pydantic
    converter and the codec of PAYLOAD_* and BLOB_STORE_*, so workers and starters built here all read
    each other's offloaded and encrypted payloads, and tracing.

    A cluster that cannot be reached is a `ConfigError` naming TEMPORAL_ADDRESS (config/cli.py), so every
    command reports it in one line.
    """
    from service.plugin import AgentServicePlugin

    return await _connect({**settings.temporal, **overrides, "plugins": [AgentServicePlugin(settings)]})


async def connect_reader(settings: Settings, **overrides: Any) -> Client:
    """A client that only reads runs (`python -m progress follow`): the settings' cluster and the same data
    converter (codec) as `connect`, without the plugin's tracing, so it starts in a fraction of a second less."""
    from payloads.converter import data_converter

    return await _connect({**settings.temporal, **overrides, "data_converter": data_converter(settings)})


async def _connect(arguments: dict[str, Any]) -> Client:
    try:
        return await Client.connect(**arguments)
    except (RuntimeError, RPCError) as exc:  # the SDK raises RuntimeError when its first RPC cannot be made
        raise temporal_unreachable(str(arguments.get("target_host", "?")), exc) from exc


def metrics_runtime(bind_address: str | None) -> Runtime | None:
    """A Temporal runtime serving Prometheus metrics on `bind_address` (`host:port`), or None for the default one.

    Counters get the `_total` suffix Prometheus users expect; the product's own metrics
    (telemetry/metrics.py) are served beside the SDK's on the same endpoint.
    """
    if not bind_address:
        return None
    prometheus = PrometheusConfig(
        bind_address=bind_address, counters_total_suffix=True, histogram_bucket_overrides=HISTOGRAM_BUCKETS
    )
    return Runtime(telemetry=TelemetryConfig(metrics=prometheus))
