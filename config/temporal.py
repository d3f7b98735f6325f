"""Connecting to Temporal the same way everywhere: envconfig, pydantic payloads + payload codec, tracing plugin."""

from __future__ import annotations

import os
from typing import Mapping

from temporalio.client import Client
from temporalio.envconfig import ClientConfig

from config.codec import data_converter_from_env
from telemetry.tracing import temporal_plugins


async def connect(env: Mapping[str, str] | None = None, **overrides) -> Client:
    """A client for the cluster named by TEMPORAL_ADDRESS / TEMPORAL_NAMESPACE / TEMPORAL_API_KEY / TLS vars.

    Defaults follow `temporalio.envconfig` (localhost:7233, namespace `default`); `overrides`
    replace any connect argument (tests pass the address of their own server). Payloads go through
    the codec configured by PAYLOAD_* and BLOB_STORE_* (config/codec.py), so workers and starters
    built here all read each other's offloaded and encrypted payloads.
    """
    config = ClientConfig.load_client_connect_config(override_env_vars=env)
    config.setdefault("target_host", "localhost:7233")
    config.update(overrides)
    return await Client.connect(
        **config,
        data_converter=data_converter_from_env(os.environ if env is None else env),
        plugins=temporal_plugins(),
    )
