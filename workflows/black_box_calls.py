"""Running one black-box agent as an `invoke_agent` activity: shared by pattern A and the hybrid workflow."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.common import failure_detail

with workflow.unsafe.imports_passed_through():
    from activities.black_box.invoke_agent import BlackBoxActivities
    from models.blackbox import InvokeAgentRequest, InvokeAgentResult

AGENT_TIMEOUT = timedelta(minutes=15)
AGENT_HEARTBEAT_TIMEOUT = timedelta(seconds=10)
"""`invoke_agent` heartbeats every second, so a dead worker's agent is retried within ~10 s."""
AGENT_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30), maximum_attempts=3
)
"""Few attempts: each one re-runs (and re-pays) the whole agent."""
DEFAULT_MAX_TURNS = 10
DEFAULT_MAX_OUTPUT_TOKENS = 4096


class AgentRunFailed(ApplicationError):
    """A black-box agent failed after its retries."""


async def invoke_black_box(request: InvokeAgentRequest, *, summary: str, where: str) -> InvokeAgentResult:
    """Run one whole agent as an activity; its final failure becomes a non-retryable `AgentRunFailed` naming `where`."""
    try:
        return await workflow.execute_activity_method(
            BlackBoxActivities.invoke_agent,
            request,
            start_to_close_timeout=AGENT_TIMEOUT,
            heartbeat_timeout=AGENT_HEARTBEAT_TIMEOUT,
            retry_policy=AGENT_RETRY,
            summary=summary,
        )
    except ActivityError as exc:
        detail = failure_detail(exc)
        raise AgentRunFailed(
            f"agent {request.agent} failed at {where}: {detail}", type="AgentRunFailed", non_retryable=True
        ) from exc
