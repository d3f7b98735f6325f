"""BlackBoxAgentWorkflow for unversioned workers (workflows/unversioned/__init__.py says why).

A module of its own: a new sandbox imports the module of the class it runs, and so only this workflow's code.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow

from workflows.black_box import BlackBoxAgentWorkflow

with workflow.unsafe.imports_passed_through():
    from models.run import AgentRunResult


@workflow.defn(name="BlackBoxAgentWorkflow")
class UnversionedBlackBoxAgentWorkflow(BlackBoxAgentWorkflow):
    """BlackBoxAgentWorkflow on an unversioned worker."""

    @workflow.run
    async def run(self, raw: Any = None) -> AgentRunResult:
        """BlackBoxAgentWorkflow.run."""
        return await super().run(raw)
