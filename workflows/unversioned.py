"""The three workflows for unversioned workers (no WORKER_DEPLOYMENT_NAME): the same code without a versioning behavior.

The SDK sends a type's declared behavior with every workflow task it completes, and the server refuses a behavior
from a worker outside a Worker Deployment ("versioning behavior cannot be specified without deployment options"),
failing the task forever. So an unversioned worker registers these subclasses, which add nothing but the
undeclared behavior (service/plugin.py picks one set or the other).
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow

from workflows.agent_loop import AgentLoopWorkflow
from workflows.black_box import BlackBoxAgentWorkflow
from workflows.hybrid import HybridAgentWorkflow

with workflow.unsafe.imports_passed_through():
    from models.run import AgentRunResult


@workflow.defn(name="AgentLoopWorkflow")
class UnversionedAgentLoopWorkflow(AgentLoopWorkflow):
    """AgentLoopWorkflow on an unversioned worker."""

    @workflow.run
    async def run(self, raw: Any = None, carry: Any = None) -> AgentRunResult:
        """AgentLoopWorkflow.run."""
        return await super().run(raw, carry)


@workflow.defn(name="BlackBoxAgentWorkflow")
class UnversionedBlackBoxAgentWorkflow(BlackBoxAgentWorkflow):
    """BlackBoxAgentWorkflow on an unversioned worker."""

    @workflow.run
    async def run(self, raw: Any = None) -> AgentRunResult:
        """BlackBoxAgentWorkflow.run."""
        return await super().run(raw)


@workflow.defn(name="HybridAgentWorkflow")
class UnversionedHybridAgentWorkflow(HybridAgentWorkflow):
    """HybridAgentWorkflow on an unversioned worker."""

    @workflow.run
    async def run(self, raw: Any = None, carry: Any = None) -> AgentRunResult:
        """HybridAgentWorkflow.run."""
        return await super().run(raw, carry)
