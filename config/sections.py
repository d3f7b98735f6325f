"""The smaller groups of settings: blob store, health endpoint, Langfuse, model providers, codec server, Temporal."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from temporalio.envconfig import ClientConfig

from config.env import boolean, csv, http_url, integer, port, read, var
from models.errors import ConfigError


@dataclass(frozen=True)
class BlobSettings:
    """Where offloaded bytes live: S3 when a bucket is named, else a directory (payloads/blobs.py)."""

    dir: str = var("BLOB_STORE_DIR", ".temporal/blobs")
    s3_bucket: str = var("BLOB_STORE_S3_BUCKET", "")
    s3_prefix: str = var("BLOB_STORE_S3_PREFIX", "")


@dataclass(frozen=True)
class HealthSettings:
    """`GET /healthz` (telemetry/health.py)."""

    host: str = var("WORKER_HEALTH_HOST", "127.0.0.1")
    port: int = var("WORKER_HEALTH_PORT", 0, port)
    """0 turns the endpoint off (the default outside containers)."""


@dataclass(frozen=True)
class LangfuseSettings:
    """Where and as whom to send traces; the secret stays out of `repr`."""

    public_key: str = var("LANGFUSE_PUBLIC_KEY", "")
    secret_key: str = var("LANGFUSE_SECRET_KEY", "", repr=False)
    base_url: str = var("LANGFUSE_BASE_URL", "https://cloud.langfuse.com")
    capture_content: bool = var("LANGFUSE_CAPTURE_CONTENT", True, boolean)
    """False: generations and tool spans carry model, usage, timing and outcome, never prompt or output text."""


def read_langfuse(env: Mapping[str, str]) -> LangfuseSettings | None:
    """Langfuse settings; None (tracing export off) when both keys are absent, ConfigError when one is."""
    # LANGFUSE_HOST is the older name of LANGFUSE_BASE_URL.
    base_url = env.get("LANGFUSE_BASE_URL") or env.get("LANGFUSE_HOST") or ""
    config = read(LangfuseSettings, {**env, "LANGFUSE_BASE_URL": base_url})
    if not config.public_key and not config.secret_key:
        return None
    if not config.public_key or not config.secret_key:
        missing = "LANGFUSE_PUBLIC_KEY" if not config.public_key else "LANGFUSE_SECRET_KEY"
        raise ConfigError(
            f"{missing} is not set but its pair is: set both Langfuse keys, or neither to turn export off"
        )
    return LangfuseSettings(
        config.public_key,
        config.secret_key,
        http_url("LANGFUSE_BASE_URL", config.base_url, None).rstrip("/"),
        config.capture_content,
    )


@dataclass(frozen=True)
class AnthropicSettings:
    """Claude through the SDK's own variables; keys stay out of `repr`."""

    api_key: str | None = var("ANTHROPIC_API_KEY", None, repr=False)
    auth_token: str | None = var("ANTHROPIC_AUTH_TOKEN", None, repr=False)
    base_url: str | None = var("ANTHROPIC_BASE_URL", None)
    """None: the SDK's default endpoint."""

    @property
    def configured(self) -> bool:
        """Whether a key or token is present."""
        return bool(self.api_key or self.auth_token)


@dataclass(frozen=True)
class OpenAISettings:
    """OpenAI and the Agents SDK through the SDK's own variables; the key stays out of `repr`."""

    api_key: str | None = var("OPENAI_API_KEY", None, repr=False)
    base_url: str | None = var("OPENAI_BASE_URL", None)
    """None: the SDK's default endpoint."""

    @property
    def configured(self) -> bool:
        """Whether a key is present."""
        return bool(self.api_key)


DEFAULT_CODEC_ORIGINS = ("http://localhost:8233", "http://127.0.0.1:8233")
"""The Temporal UI of `temporal server start-dev`."""
DEFAULT_CODEC_MAX_BODY_BYTES = 6 * 1024 * 1024
"""A batch of payloads fits Temporal's 4 MB gRPC message; as proto3 JSON (base64 data) it is 4/3 of that, ~5.4 MB."""


@dataclass(frozen=True)
class CodecServerSettings:
    """`python -m payloads.codec_server` (payloads/codec_server.py)."""

    token: str = var("CODEC_SERVER_TOKEN", "", repr=False)
    host: str = var("CODEC_SERVER_HOST", "127.0.0.1")
    port: int = var("CODEC_SERVER_PORT", 8081, integer(0))
    origins: tuple[str, ...] = var("CODEC_SERVER_CORS_ORIGINS", DEFAULT_CODEC_ORIGINS, csv)
    namespaces: tuple[str, ...] = var("CODEC_SERVER_NAMESPACES", (), csv)
    """Namespaces served; empty: any."""
    max_body_bytes: int = var("CODEC_SERVER_MAX_BODY_BYTES", DEFAULT_CODEC_MAX_BODY_BYTES, integer(1024))
    """Largest request body read; bigger ones are refused (413) before a byte of the body is read."""
    timeout_seconds: int = var("CODEC_SERVER_TIMEOUT_SECONDS", 10, integer(1))
    """One deadline per request: its line, headers and body must all arrive within it, or it is disconnected."""
    threads: int = var("CODEC_SERVER_THREADS", 8, integer(1))
    """Requests served at once; a connection that finds them all busy is answered 503 at once."""


DEFAULT_TEMPORAL_ADDRESS = "localhost:7233"


def read_temporal(env: Mapping[str, str]) -> dict[str, Any]:
    """`Client.connect` arguments from TEMPORAL_ADDRESS / _NAMESPACE / _API_KEY / _TLS* (or TEMPORAL_PROFILE).

    Read by `temporalio.envconfig`, so the worker reaches a local server, a self-hosted mTLS
    cluster or Temporal Cloud with no code change: an API key turns TLS on by itself.
    """
    # Compose and Kubernetes often pass "" for "unset"; envconfig would take "" as a certificate path.
    present = {name: value for name, value in env.items() if value != ""}
    try:
        config: dict[str, Any] = dict(ClientConfig.load_client_connect_config(override_env_vars=present))
    except Exception as exc:  # a missing certificate file, an unknown TEMPORAL_PROFILE, a malformed config file
        raise ConfigError(f"Temporal connection settings (TEMPORAL_* variables or config file): {exc}") from None
    config.setdefault("target_host", DEFAULT_TEMPORAL_ADDRESS)
    return config


_SECRET_NAMES = re.compile(r"(KEY|SECRET|TOKEN|PASSWORD)", re.IGNORECASE)


def secret_values(env: Mapping[str, str]) -> tuple[str, ...]:
    """Values of variables whose names say secret, longest first: what observations must never show."""
    return tuple(sorted({v for k, v in env.items() if _SECRET_NAMES.search(k) and len(v) >= 8}, key=len, reverse=True))
