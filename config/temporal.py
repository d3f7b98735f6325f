"""Connecting to Temporal the same way everywhere: envconfig, pydantic payloads, tracing plugin."""

from __future__ import annotations

from typing import Mapping

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.envconfig import ClientConfig
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from telemetry import metrics
from telemetry.tracing import temporal_plugins

HISTOGRAM_BUCKETS = {
    metrics.RUN_COST: [0.001, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 20.0],
    metrics.RUN_TOKENS: [1_000, 10_000, 50_000, 100_000, 200_000, 500_000, 1_000_000],
    metrics.RUN_STEPS: [1, 2, 5, 10, 20, 50, 100, 300, 1_000],
    metrics.APPROVAL_WAIT: [10, 60, 600, 3_600, 14_400, 86_400, 604_800],
}
"""The SDK's default buckets (50 ms to 10 s) suit latencies, not dollars, tokens, steps or days of waiting."""


async def connect(env: Mapping[str, str] | None = None, **overrides) -> Client:
    """A client for the cluster named by TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE / TEMPORAL_API_KEY / TLS vars.

    Defaults follow `temporalio.envconfig` (localhost:7233, namespace `default`); `overrides`
    replace any connect argument (tests pass the address of their own server).
    """
    config = ClientConfig.load_client_connect_config(override_env_vars=env)
    config.setdefault("target_host", "localhost:7233")
    config.update(overrides)
    return await Client.connect(
        **config,
        data_converter=pydantic_data_converter,
        plugins=temporal_plugins(),
    )


def metrics_runtime(bind_address: str | None) -> Runtime | None:
    """A Temporal runtime serving Prometheus metrics on `bind_address` (`host:port`), or None for the default one.

    Counters get the `_total` suffix Prometheus users expect; the product's own metrics
    (telemetry/metrics.py) are served beside the SDK's on the same endpoint.
    """
    if not bind_address:
        return None
    prometheus = PrometheusConfig(bind_address=bind_address, counters_total_suffix=True, histogram_bucket_overrides=HISTOGRAM_BUCKETS)
    return Runtime(telemetry=TelemetryConfig(metrics=prometheus))
