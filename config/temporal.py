"""Connecting to Temporal the same way everywhere: envconfig, pydantic payloads + payload codec, tracing plugin."""

from __future__ import annotations

import os
from collections.abc import Mapping

from temporalio.client import Client
from temporalio.envconfig import ClientConfig
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from config.codec import data_converter_from_env
from models.errors import ConfigError
from telemetry import metrics
from telemetry.tracing import temporal_plugins

HISTOGRAM_BUCKETS = {
    metrics.RUN_COST: [0.001, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 20.0],
    metrics.RUN_TOKENS: [1_000, 10_000, 50_000, 100_000, 200_000, 500_000, 1_000_000],
    metrics.RUN_STEPS: [1, 2, 5, 10, 20, 50, 100, 300, 1_000],
    metrics.APPROVAL_WAIT: [10, 60, 600, 3_600, 14_400, 86_400, 604_800],
}
"""The SDK's default buckets (50 ms to 10 s) suit latencies, not dollars, tokens, steps or days of waiting."""


def connect_config(env: Mapping[str, str] | None = None) -> dict:
    """`Client.connect` arguments from TEMPORAL_ADDRESS / _NAMESPACE / _API_KEY / _TLS* (or TEMPORAL_PROFILE).

    Read by `temporalio.envconfig`, so the worker reaches a local server, a self-hosted mTLS
    cluster or Temporal Cloud with no code change: an API key turns TLS on by itself.
    """
    source = os.environ if env is None else env
    # Compose and Kubernetes often pass "" for "unset"; envconfig would take "" as a certificate path.
    present = {name: value for name, value in source.items() if value != ""}
    try:
        config = ClientConfig.load_client_connect_config(override_env_vars=present)
    except Exception as exc:  # a missing certificate file, an unknown TEMPORAL_PROFILE, a malformed config file
        raise ConfigError(f"Temporal connection settings (TEMPORAL_* variables or config file): {exc}") from None
    config.setdefault("target_host", "localhost:7233")
    return config


async def connect(env: Mapping[str, str] | None = None, **overrides) -> Client:
    """A client for the cluster named by the environment (see `connect_config`).

    Defaults follow `temporalio.envconfig` (localhost:7233, namespace `default`); `overrides`
    replace any connect argument (tests pass the address of their own server). Payloads go through
    the codec configured by PAYLOAD_* and BLOB_STORE_* (config/codec.py), so workers and starters
    built here all read each other's offloaded and encrypted payloads.
    """
    config = connect_config(env)
    config.update(overrides)
    return await Client.connect(
        **config,
        data_converter=data_converter_from_env(os.environ if env is None else env),
        plugins=temporal_plugins(),
    )


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
