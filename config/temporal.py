"""Connecting to Temporal the same way everywhere: envconfig, pydantic payloads, tracing plugin."""

from __future__ import annotations

import os
from typing import Mapping

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.envconfig import ClientConfig

from config.settings import ConfigError
from telemetry.tracing import temporal_plugins


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
    replace any connect argument (tests pass the address of their own server).
    """
    config = connect_config(env)
    config.update(overrides)
    return await Client.connect(
        **config,
        data_converter=pydantic_data_converter,
        plugins=temporal_plugins(),
    )
