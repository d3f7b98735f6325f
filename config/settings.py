"""Worker settings, read once from the environment at start-up and checked there."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from models.errors import ConfigError
from models.history import HistoryLimits
from models.run import check_model_name
from telemetry.tracing import langfuse_config

if TYPE_CHECKING:
    from store.blobs import BlobStore

DEFAULT_MODEL = "anthropic:claude-sonnet-5-5"


def _int(env: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def _port(env: Mapping[str, str], name: str) -> int:
    port = _int(env, name, 0, 0)
    if port > 65535:
        raise ConfigError(f"{name} must be a TCP port (1-65535, or 0 for off), got {port}")
    return port


def _choice(env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...]) -> str:
    value = (env.get(name) or default).strip().lower()
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {env.get(name)!r}")
    return value


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if raw == "":
        return default
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false (1/0, yes/no), got {raw!r}")


def _history_limits(env: Mapping[str, str]) -> HistoryLimits:
    defaults = HistoryLimits()
    return HistoryLimits(
        offload=_bool(env, "HISTORY_OFFLOAD", defaults.offload),
        max_events=_int(env, "HISTORY_MAX_EVENTS", defaults.max_events, 100),
        context_summary_tokens=_int(env, "CONTEXT_SUMMARY_TOKENS", defaults.context_summary_tokens, 0),
    )


def _webhook_url(env: Mapping[str, str]) -> str | None:
    url = env.get("NOTIFY_WEBHOOK_URL") or None
    if url is not None and not url.startswith(("http://", "https://")):
        raise ConfigError(f"NOTIFY_WEBHOOK_URL must be an http(s) URL, got {url!r}")
    return url


@dataclass(frozen=True)
class Settings:
    """Everything a worker process needs to know about its environment."""

    task_queue: str = "agents"
    default_model: str = DEFAULT_MODEL
    notes_db: str = "notes.db"
    llm_timeout_seconds: int = 120
    max_concurrent_activities: int = 100
    max_cached_workflows: int = 25
    """Runs kept in memory; waiting runs beyond it cost nothing until their signal (bench/waiting.py)."""
    graceful_shutdown_seconds: int = 30
    max_concurrent_workflow_tasks: int = 100
    identity: str | None = None
    """Worker identity shown in event histories; None keeps the SDK's `pid@hostname`."""
    health_host: str = "127.0.0.1"
    health_port: int = 0
    """Port of `GET /healthz`; 0 turns the endpoint off (the default outside containers)."""
    notify_outbox: str = "outbox.jsonl"
    notify_webhook_url: str | None = None
    """When set, `send_notification` POSTs here instead of appending to `notify_outbox`."""
    metrics_port: int = 0
    """Port of the Prometheus `/metrics` endpoint (SDK and agent metrics); 0 turns it off."""
    metrics_host: str = "127.0.0.1"

    @property
    def metrics_address(self) -> str | None:
        """`host:port` the Prometheus endpoint binds to, or None when off."""
        return f"{self.metrics_host}:{self.metrics_port}" if self.metrics_port else None

    archive_runs: bool = True
    """Write each finished run's archive to the blob store (`ARCHIVE_RUNS=0` turns it off)."""
    archive_s3_annotations: str = "auto"
    """S3 object annotations: `auto` (probe the bucket), `on`, or `off` (sidecar JSON objects)."""
    history: HistoryLimits = field(default_factory=HistoryLimits)
    """What keeps each run's history small (HISTORY_OFFLOAD, HISTORY_MAX_EVENTS, CONTEXT_SUMMARY_TOKENS)."""
    tool_output_max_chars: int = 8000
    """Characters of one tool output the model is shown; the full output stays in the blob store."""
    blob_store_dir: str = ".temporal/blobs"
    blob_store_s3_bucket: str = ""
    blob_store_s3_prefix: str = ""

    def blob_store(self) -> BlobStore:
        """The store offloaded conversations and outputs live in: S3 when a bucket is set, else the directory."""
        from store.blobs import blob_store_from_env

        return blob_store_from_env(
            {
                "BLOB_STORE_DIR": self.blob_store_dir,
                "BLOB_STORE_S3_BUCKET": self.blob_store_s3_bucket,
                "BLOB_STORE_S3_PREFIX": self.blob_store_s3_prefix,
            }
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read settings; a malformed value raises ConfigError naming the variable."""
        env = os.environ if env is None else env
        model = env.get("AGENT_MODEL") or DEFAULT_MODEL
        try:
            check_model_name(model)
        except ValueError as exc:
            raise ConfigError(f"AGENT_MODEL {exc}") from None
        langfuse_config(env)
        return cls(
            task_queue=env.get("TEMPORAL_TASK_QUEUE") or "agents",
            default_model=model,
            notes_db=env.get("NOTES_DB") or "notes.db",
            llm_timeout_seconds=_int(env, "LLM_TIMEOUT_SECONDS", 120, 1),
            max_concurrent_activities=_int(env, "WORKER_MAX_CONCURRENT_ACTIVITIES", 100, 1),
            max_cached_workflows=_int(env, "WORKER_MAX_CACHED_WORKFLOWS", 25, 0),
            graceful_shutdown_seconds=_int(env, "WORKER_GRACEFUL_SHUTDOWN_SECONDS", 30, 0),
            max_concurrent_workflow_tasks=_int(env, "WORKER_MAX_CONCURRENT_WORKFLOW_TASKS", 100, 1),
            identity=env.get("WORKER_IDENTITY") or None,
            health_host=env.get("WORKER_HEALTH_HOST") or "127.0.0.1",
            health_port=_port(env, "WORKER_HEALTH_PORT"),
            notify_outbox=env.get("NOTIFY_OUTBOX") or "outbox.jsonl",
            notify_webhook_url=_webhook_url(env),
            metrics_port=_port(env, "WORKER_METRICS_PORT"),
            metrics_host=env.get("WORKER_METRICS_HOST") or "127.0.0.1",
            archive_runs=_choice(env, "ARCHIVE_RUNS", "1", ("1", "0", "true", "false", "on", "off"))
            in ("1", "true", "on"),
            archive_s3_annotations=_choice(env, "ARCHIVE_S3_ANNOTATIONS", "auto", ("auto", "on", "off")),
            history=_history_limits(env),
            tool_output_max_chars=_int(env, "TOOL_OUTPUT_MAX_CHARS", 8000, 100),
            blob_store_dir=env.get("BLOB_STORE_DIR") or ".temporal/blobs",
            blob_store_s3_bucket=env.get("BLOB_STORE_S3_BUCKET") or "",
            blob_store_s3_prefix=env.get("BLOB_STORE_S3_PREFIX") or "",
        )
