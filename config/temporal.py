"""Connecting to Temporal the same way everywhere: envconfig, pydantic payloads, tracing plugin."""

from __future__ import annotations

from typing import Mapping

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.envconfig import ClientConfig

from telemetry.tracing import temporal_plugins


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
