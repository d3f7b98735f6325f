"""The workflow sandbox without its per-payload serialization-context lookups, for converters that ignore context.

For every payload of every activation and completion the SDK asks the workflow which serialization
context applies (`_CommandAwareDataConverter._get_current_dc`); with the sandboxed runner each question
is a sandboxed `exec` (`_Instance.get_serialization_context`, and `get_external_store_context` once more
per completion), about 24 per loop step (bench/step_profile.py). The answer only matters to a converter,
codec or external storage that reads the context. The product's (pydantic JSON, AES-GCM, claim check)
read none, so for them every answer yields the very same converter and the same payload bytes: the
lookups are skipped, and the workflow code itself still runs in the sandbox. Any converter that does
read context (`DataConverter.with_context` returns a new converter) keeps the stock lookups.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from temporalio.bridge.proto.workflow_activation import WorkflowActivation
from temporalio.bridge.proto.workflow_completion import WorkflowActivationCompletion
from temporalio.converter import (
    ActivitySerializationContext,
    DataConverter,
    SerializationContext,
    StorageDriverStoreContext,
    WorkflowSerializationContext,
)
from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

_PROBES: tuple[SerializationContext, ...] = (
    WorkflowSerializationContext(namespace="probe", workflow_id="probe"),
    ActivitySerializationContext(
        namespace="probe",
        workflow_id="probe",
        workflow_type="probe",
        activity_type="probe",
        activity_task_queue="probe",
        activity_id="probe",
        is_local=False,
    ),
)


def ignores_context(converter: DataConverter) -> bool:
    """True when no serialization context can change what `converter` writes or reads (and nothing is stored
    externally, whose store context would otherwise matter)."""
    if converter.external_storage is not None:
        return False
    return all(converter.with_context(probe) is converter for probe in _PROBES)


@dataclasses.dataclass(frozen=True)
class ContextFreeSandboxedWorkflowRunner(SandboxedWorkflowRunner):
    """SandboxedWorkflowRunner whose instances answer the context lookups outside the sandbox (with None)."""

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        """The sandboxed instance, wrapped."""
        return _ContextFreeInstance(super().create_instance(det))


class _ContextFreeInstance(WorkflowInstance):
    """Forwards everything to the sandboxed instance except the two context lookups."""

    def __init__(self, inner: WorkflowInstance) -> None:
        self._inner = inner

    def activate(self, act: WorkflowActivation) -> WorkflowActivationCompletion:
        """The sandboxed activation, unchanged."""
        return self._inner.activate(act)

    def get_serialization_context(self, command_info: Any) -> SerializationContext | None:
        """None: the context-free converter (which is what any context would give a converter that ignores it)."""
        return None

    def get_external_store_context(self, command_info: Any) -> StorageDriverStoreContext:
        """No target: there is no external storage to address."""
        return StorageDriverStoreContext(target=None)

    def get_info(self) -> Any:
        """The workflow's info, from the sandboxed instance."""
        return self._inner.get_info()

    def get_thread_id(self) -> int | None:
        """The thread the sandboxed workflow runs on (deadlock reports)."""
        return self._inner.get_thread_id()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def context_free(runner: WorkflowRunner, converter: DataConverter) -> WorkflowRunner:
    """`runner` without the lookups when it is the stock sandbox and `converter` ignores context; else `runner`."""
    if type(runner) is not SandboxedWorkflowRunner or not ignores_context(converter):
        return runner
    fields = {f.name: getattr(runner, f.name) for f in dataclasses.fields(runner) if f.init}
    faster = ContextFreeSandboxedWorkflowRunner(**fields)
    faster.set_worker_level_failure_exception_types(runner._worker_level_failure_exception_types)
    return faster
