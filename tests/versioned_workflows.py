"""Two versions of one test-only workflow type, for the Worker Deployment test (tests/test_deployments.py).

Version 2 runs a new activity before the first one (a changed order of activities): it cannot replay a run
version 1 started.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import VersioningBehavior

WORKFLOW_TYPE = "VersionedApprovalWorkflow"


@activity.defn(name="plan")
async def plan() -> str:
    """A step of both versions."""
    return "plan"


@activity.defn(name="check")
async def check() -> str:
    """The step version 2 runs first."""
    return "check"


@activity.defn(name="act")
async def act() -> str:
    """The step after the approval."""
    return "act"


ACTIVITIES = [plan, check, act]


class _Approvable:
    def __init__(self) -> None:
        self.approved = False

    @workflow.signal(name="approve")
    def approve(self, payload: dict | None = None) -> None:
        """Lets the run past its wait."""
        self.approved = True

    async def step(self, name: str) -> str:
        return await workflow.execute_activity(name, start_to_close_timeout=timedelta(seconds=10), result_type=str)


@workflow.defn(name=WORKFLOW_TYPE, versioning_behavior=VersioningBehavior.PINNED)
class ApprovalV1(_Approvable):
    """Version 1: plan, wait for approval, then act."""

    @workflow.run
    async def run(self) -> str:
        """plan -> approval -> act."""
        done = [await self.step("plan")]
        await workflow.wait_condition(lambda: self.approved)
        done.append(await self.step("act"))
        return f"v1:{','.join(done)}"


@workflow.defn(name=WORKFLOW_TYPE, versioning_behavior=VersioningBehavior.PINNED)
class ApprovalV2(_Approvable):
    """Version 2: checks first, then plans (a changed order of activities)."""

    @workflow.run
    async def run(self) -> str:
        """check -> plan -> approval -> act."""
        done = [await self.step("check"), await self.step("plan")]
        await workflow.wait_condition(lambda: self.approved)
        done.append(await self.step("act"))
        return f"v2:{','.join(done)}"
