"""Settings, read once from the environment at start-up and checked there, then passed down.

This is the one module that reads `os.environ` (when `Settings.from_env` is given no mapping); every
other part of the product takes what it needs from a `Settings`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from config.deployment import DeploymentSettings, read_deployment
from config.env import boolean, choice, http_url, integer, names, port, rates, read, switch, value, var
from config.gateway import GatewaySettings, check_gateway
from config.payloads import PayloadSettings, read_payload_settings
from config.sections import (
    AnthropicSettings,
    BlobSettings,
    CodecServerSettings,
    HealthSettings,
    LangfuseSettings,
    OpenAISettings,
    read_langfuse,
    read_temporal,
    secret_values,
)
from config.spend_limits import read_spend_limits
from models.errors import ConfigError
from models.history import HistoryLimits
from models.run import check_model_name
from models.spend_limits import SpendLimits


def _model_name(name: str, raw: str, default: Any) -> str:
    try:
        check_model_name(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} {exc}") from None
    return raw


def _history_limits(env: Mapping[str, str]) -> HistoryLimits:
    defaults = HistoryLimits()
    return HistoryLimits(
        offload=value(env, "HISTORY_OFFLOAD", boolean, defaults.offload),
        max_events=value(env, "HISTORY_MAX_EVENTS", integer(100), defaults.max_events),
        context_summary_tokens=value(env, "CONTEXT_SUMMARY_TOKENS", integer(0), defaults.context_summary_tokens),
    )


@dataclass(frozen=True)
class Settings:
    """Everything a process of this product needs to know about its environment."""

    task_queue: str = var("TEMPORAL_TASK_QUEUE", "agents")
    default_model: str = var("AGENT_MODEL", "anthropic:claude-sonnet-5-5", _model_name)
    notes_db: str = var("NOTES_DB", "notes.db")
    llm_timeout_seconds: int = var("LLM_TIMEOUT_SECONDS", 120, integer(1))
    llm_streaming: bool = var("LLM_STREAMING", True, boolean)
    """Stream model replies (and publish their text on the run's progress stream); 0 for proxies that cannot."""
    max_concurrent_activities: int = var("WORKER_MAX_CONCURRENT_ACTIVITIES", 100, integer(1))
    max_cached_workflows: int = var("WORKER_MAX_CACHED_WORKFLOWS", 25, integer(0))
    """Runs kept in memory; waiting runs beyond it cost nothing until their signal (bench/waiting.py)."""
    graceful_shutdown_seconds: int = var("WORKER_GRACEFUL_SHUTDOWN_SECONDS", 30, integer(0))
    max_concurrent_workflow_tasks: int = var("WORKER_MAX_CONCURRENT_WORKFLOW_TASKS", 100, integer(1))
    sticky_timeout_ms: int = var("WORKER_STICKY_TIMEOUT_MS", 500, integer(100))
    """How long a run's next workflow task waits for the worker that has it cached before any worker may take it."""
    memory_trim_seconds: int = var("WORKER_MEMORY_TRIM_SECONDS", 10, integer(0))
    """How often the worker process hands freed memory back to the system (service/memory.py); 0: never."""
    identity: str | None = var("WORKER_IDENTITY", None)
    """Worker identity shown in event histories; None keeps the SDK's `pid@hostname`."""
    notify_outbox: str = var("NOTIFY_OUTBOX", "outbox.jsonl")
    notify_webhook_url: str | None = var("NOTIFY_WEBHOOK_URL", None, http_url)
    """When set, `send_notification` POSTs here instead of appending to `notify_outbox`."""
    metrics_port: int = var("WORKER_METRICS_PORT", 0, port)
    """Port of the Prometheus `/metrics` endpoint (SDK and agent metrics); 0 turns it off."""
    metrics_host: str = var("WORKER_METRICS_HOST", "127.0.0.1")
    archive_runs: bool = var("ARCHIVE_RUNS", True, switch)
    """Write each finished run's archive to the blob store (`ARCHIVE_RUNS=0` turns it off)."""
    archive_s3_annotations: str = var("ARCHIVE_S3_ANNOTATIONS", "auto", choice("auto", "on", "off"))
    """S3 object annotations: `auto` (probe the bucket), `on`, or `off` (sidecar JSON objects)."""
    tool_output_max_chars: int = var("TOOL_OUTPUT_MAX_CHARS", 8000, integer(100))
    """Characters of one tool output the model is shown; the full output stays in the blob store."""
    log_level: str = var("LOG_LEVEL", "INFO")
    llm_rate_limits: tuple[tuple[str, float], ...] = var("LLM_RATE_LIMITS", (), rates)
    """Model calls per second the whole fleet may send, per provider (`anthropic=5,openai=2`): a provider named
    here gets a task queue of its own (`<TEMPORAL_TASK_QUEUE>-llm-<provider>`) whose rate the server enforces."""
    llm_max_concurrent: int = var("LLM_MAX_CONCURRENT", 20, integer(1))
    """Model calls (call_llm, invoke_agent) one worker runs at once on each provider queue."""
    service_name: str = var("OTEL_SERVICE_NAME", "durable-agents")
    """`service.name` of this process's traces (OpenTelemetry's own variable); `service.version` is the package's."""
    agents_file: str | None = var("AGENTS_FILE", None)
    """TOML file of the user's agents and MCP servers, read and checked at start (tools/agents_file.py)."""
    tool_modules: tuple[str, ...] = var("TOOL_MODULES", (), names)
    """Python modules whose `@tool` functions the worker registers (found on PYTHONPATH)."""
    spend_limits_file: str | None = var("SPEND_LIMITS", None)
    """TOML file of spend limits that hold across runs (docs/spend-limits.md); a bad file stops the worker at start."""
    spend_limits: SpendLimits | None = None
    """The file's limits, parsed and checked once (None: no limits)."""
    history: HistoryLimits = field(default_factory=HistoryLimits)
    """What keeps each run's history small (HISTORY_OFFLOAD, HISTORY_MAX_EVENTS, CONTEXT_SUMMARY_TOKENS)."""
    health: HealthSettings = field(default_factory=HealthSettings)
    blobs: BlobSettings = field(default_factory=BlobSettings)
    payloads: PayloadSettings = field(default_factory=PayloadSettings)
    langfuse: LangfuseSettings | None = None
    """None: tracing export off."""
    anthropic: AnthropicSettings = field(default_factory=AnthropicSettings)
    openai: OpenAISettings = field(default_factory=OpenAISettings)
    codec_server: CodecServerSettings = field(default_factory=CodecServerSettings)
    gateway: GatewaySettings = field(default_factory=GatewaySettings)
    deployment: DeploymentSettings = field(default_factory=DeploymentSettings)
    """The Worker Deployment and build id the worker joins (WORKER_DEPLOYMENT_NAME, WORKER_BUILD_ID); unversioned
    when no name is set (config/deployment.py)."""
    """The HTTP gateway, approval links and the approval webhook (config/gateway.py)."""
    temporal: dict[str, Any] = field(default_factory=lambda: read_temporal({}), repr=False)
    """`Client.connect` arguments (address, namespace, TLS, API key) read by `temporalio.envconfig`."""
    environ: dict[str, str] = field(default_factory=dict, repr=False)
    """The environment these settings were read from: `${VAR}` in the agents file's MCP `headers` and `env`."""
    secrets: tuple[str, ...] = field(default=(), repr=False)
    """Values of the environment's KEY/SECRET/TOKEN/PASSWORD variables, masked in observations."""

    def llm_task_queue(self, provider: str) -> str:
        """The task queue of one provider's model calls (when LLM_RATE_LIMITS names it)."""
        return f"{self.task_queue}-llm-{provider}"

    @property
    def spend_ledger_task_queue(self) -> str:
        """The task queue of the spend ledgers (SpendLedgerWorkflow), polled by their own worker (service/ledger_worker.py)."""
        return f"{self.task_queue}-spend-ledgers"

    @property
    def llm_task_queues(self) -> dict[str, str]:
        """provider -> its task queue, for the providers LLM_RATE_LIMITS names."""
        return {provider: self.llm_task_queue(provider) for provider, _ in self.llm_rate_limits}

    @property
    def metrics_address(self) -> str | None:
        """`host:port` the Prometheus endpoint binds to, or None when off."""
        return f"{self.metrics_host}:{self.metrics_port}" if self.metrics_port else None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read settings from `env` (default: this process's environment); a malformed value raises ConfigError."""
        env = dict(os.environ if env is None else env)
        return read(
            cls,
            env,
            history=_history_limits(env),
            health=read(HealthSettings, env),
            blobs=read(BlobSettings, env),
            payloads=read_payload_settings(env),
            langfuse=read_langfuse(env),
            anthropic=read(AnthropicSettings, env),
            openai=read(OpenAISettings, env),
            codec_server=read(CodecServerSettings, env),
            gateway=check_gateway(read(GatewaySettings, env)),
            deployment=read_deployment(env),
            temporal=read_temporal(env),
            spend_limits=read_spend_limits(env.get("SPEND_LIMITS")),
            environ=env,
            secrets=secret_values(env),
        )


def debug_requested(env: Mapping[str, str] | None = None) -> bool:
    """Whether LOG_LEVEL asks for debug output; read on its own, since the rest of the settings may be what failed."""
    env = os.environ if env is None else env
    return env.get("LOG_LEVEL", "").strip().upper() == "DEBUG"
