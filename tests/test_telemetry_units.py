"""Tracing and metrics configuration, without a server: clear errors, the export filter, secret masking."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from config.settings import Settings
from models.errors import ConfigError
from telemetry.tracing import export_span, redactor


def test_langfuse_is_off_without_keys_and_configured_with_both():
    assert Settings.from_env({}).langfuse is None
    config = Settings.from_env(
        {"LANGFUSE_PUBLIC_KEY": "pk", "LANGFUSE_SECRET_KEY": "sk-secret-1234", "LANGFUSE_HOST": "http://lf:3000/"}
    ).langfuse
    assert config is not None and config.base_url == "http://lf:3000" and "sk-secret-1234" not in repr(config)
    assert (
        Settings.from_env({"LANGFUSE_PUBLIC_KEY": "pk", "LANGFUSE_SECRET_KEY": "sk"}).langfuse.base_url
        == "https://cloud.langfuse.com"
    )


@pytest.mark.parametrize(
    "env, named",
    [
        ({"LANGFUSE_PUBLIC_KEY": "pk"}, "LANGFUSE_SECRET_KEY"),
        ({"LANGFUSE_SECRET_KEY": "sk"}, "LANGFUSE_PUBLIC_KEY"),
        (
            {"LANGFUSE_PUBLIC_KEY": "pk", "LANGFUSE_SECRET_KEY": "sk", "LANGFUSE_BASE_URL": "lf:3000"},
            "LANGFUSE_BASE_URL",
        ),
    ],
)
def test_worker_refuses_half_configured_langfuse_naming_the_variable(env, named):
    with pytest.raises(ConfigError, match=named):
        Settings.from_env(env)


def test_metrics_port_is_off_by_default_and_checked():
    assert Settings.from_env({}).metrics_address is None
    assert Settings.from_env({"WORKER_METRICS_PORT": "9464"}).metrics_address == "127.0.0.1:9464"
    with pytest.raises(ConfigError, match="WORKER_METRICS_PORT"):
        Settings.from_env({"WORKER_METRICS_PORT": "ninety"})


def _span(name: str, scope: str):
    return SimpleNamespace(name=name, instrumentation_scope=SimpleNamespace(name=scope))


@pytest.mark.parametrize(
    "name, scope, exported",
    [
        ("RunWorkflow:AgentLoopWorkflow", "temporalio.contrib.opentelemetry._otel_interceptor", True),
        ("RunActivity:call_llm", "temporalio.contrib.opentelemetry._otel_interceptor", True),
        ("anthropic.messages", "langfuse-sdk", True),
        ("approval req-1", "durable_agents", True),
        ("HandleQuery:status", "temporalio.contrib.opentelemetry._otel_interceptor", False),
        ("HandleSignal:approve", "temporalio.contrib.opentelemetry._otel_interceptor", False),
        ("GET /", "opentelemetry.instrumentation.httpx", False),
    ],
)
def test_langfuse_receives_the_runs_spans_only(name, scope, exported):
    assert export_span(_span(name, scope)) is exported


def test_secrets_from_the_environment_are_masked_in_observations():
    env = {"ANTHROPIC_API_KEY": "sk-ant-abcdef123456", "NOTES_DB": "notes.db", "MY_TOKEN": "tok-98765432"}
    mask = redactor(Settings.from_env(env).secrets)
    data = {"messages": [{"text": "key sk-ant-abcdef123456 and tok-98765432"}], "n": 3, "db": "notes.db"}
    assert mask(data=data) == {"messages": [{"text": "key [redacted] and [redacted]"}], "n": 3, "db": "notes.db"}
