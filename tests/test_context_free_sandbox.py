"""service/sandbox.py: the sandbox skips its serialization-context lookups only for converters that ignore context."""

from __future__ import annotations

import dataclasses

from temporalio.api.common.v1 import Payload
from temporalio.converter import DataConverter, PayloadCodec, SerializationContext, WithSerializationContext
from temporalio.worker import UnsandboxedWorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from config.settings import Settings
from payloads.converter import data_converter
from service.plugin import AgentServicePlugin
from service.sandbox import ContextFreeSandboxedWorkflowRunner, context_free, ignores_context


class _ContextCodec(PayloadCodec, WithSerializationContext):
    """A codec that reads the context (e.g. to key encryption by workflow id)."""

    def __init__(self, context: SerializationContext | None = None) -> None:
        self.context = context

    def with_context(self, context: SerializationContext) -> _ContextCodec:
        return _ContextCodec(context)

    async def encode(self, payloads: list[Payload]) -> list[Payload]:
        return list(payloads)

    async def decode(self, payloads: list[Payload]) -> list[Payload]:
        return list(payloads)


def test_the_products_converters_ignore_context() -> None:
    assert ignores_context(data_converter(Settings.from_env()))
    encrypted = {"PAYLOAD_ENCRYPTION_KEY": "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="}
    assert ignores_context(data_converter(Settings.from_env(encrypted)))


def test_a_context_reading_codec_keeps_the_stock_sandbox() -> None:
    converter = dataclasses.replace(DataConverter.default, payload_codec=_ContextCodec())
    assert not ignores_context(converter)
    runner = SandboxedWorkflowRunner()
    assert context_free(runner, converter) is runner


def test_the_sandbox_keeps_its_restrictions_and_failure_types() -> None:
    runner = SandboxedWorkflowRunner()
    runner.set_worker_level_failure_exception_types([ValueError])
    faster = context_free(runner, DataConverter.default)
    assert isinstance(faster, ContextFreeSandboxedWorkflowRunner)
    assert faster.restrictions is runner.restrictions
    assert list(faster._worker_level_failure_exception_types) == [ValueError]
    unsandboxed = UnsandboxedWorkflowRunner()
    assert context_free(unsandboxed, DataConverter.default) is unsandboxed


def test_the_plugin_gives_replayers_the_context_free_sandbox() -> None:
    plugin = AgentServicePlugin(Settings.from_env())
    config = plugin.configure_replayer({"workflow_runner": SandboxedWorkflowRunner(), "workflows": []})
    assert isinstance(config["workflow_runner"], ContextFreeSandboxedWorkflowRunner)
