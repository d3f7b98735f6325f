"""Every number in a workflow input has a range: out of range fails the run at once, naming the field."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.client import WorkflowFailureError

from devstack.fake_anthropic import Reply
from models.blackbox import BlackBoxInput
from models.errors import InvalidInput
from models.hybrid import HybridInput
from models.run import MAX_APPROVAL_TIMEOUT_SECONDS, AgentRunInput
from tests.conftest import workflow_id
from tests.helpers import event_types
from tests.test_approval_time_skipping import NOTE, timer_durations
from workflows.approvals import expiry
from workflows.run_parts import parse_input

assert MAX_APPROVAL_TIMEOUT_SECONDS == 31_536_000  # at most 365 days


@pytest.mark.parametrize(
    ("model", "fields", "where"),
    [
        (AgentRunInput, {"approval": {"timeout_seconds": 10**12}}, "approval.timeout_seconds"),
        (
            AgentRunInput,
            {"approval": {"timeout_seconds": MAX_APPROVAL_TIMEOUT_SECONDS + 1}},
            "approval.timeout_seconds",
        ),
        (AgentRunInput, {"approval": {"timeout_seconds": 0}}, "approval.timeout_seconds"),
        (AgentRunInput, {"approval": {"approvers": [""]}}, "approval.approvers.0"),
        (AgentRunInput, {"approval": {"approvers": ["a"] * 101}}, "approval.approvers"),
        (AgentRunInput, {"budget": {"max_steps": 0}}, "budget.max_steps"),
        (AgentRunInput, {"budget": {"max_steps": 10_001}}, "budget.max_steps"),
        (AgentRunInput, {"budget": {"max_tokens": 10**30}}, "budget.max_tokens"),
        (AgentRunInput, {"budget": {"max_tokens": 0}}, "budget.max_tokens"),
        (AgentRunInput, {"budget": {"max_cost_usd": 0}}, "budget.max_cost_usd"),
        (AgentRunInput, {"budget": {"max_cost_usd": 1e300}}, "budget.max_cost_usd"),
        (AgentRunInput, {"budget": {"max_cost_usd": float("inf")}}, "budget.max_cost_usd"),
        (AgentRunInput, {"budget": {"max_cost_usd": float("nan")}}, "budget.max_cost_usd"),
        (AgentRunInput, {"budget": {"max_seconds": 10**12}}, "budget.max_seconds"),
        (BlackBoxInput, {"max_concurrency": 0}, "max_concurrency"),
        (BlackBoxInput, {"max_concurrency": 51}, "max_concurrency"),
        (HybridInput, {"max_revisions": 11}, "max_revisions"),
        (HybridInput, {"max_revisions": -1}, "max_revisions"),
    ],
)
def test_out_of_range_numbers_are_named(model, fields, where):
    with pytest.raises(InvalidInput, match=f"invalid input: {where}: "):
        parse_input({"prompt": "p", **fields}, model)


def test_largest_values_are_accepted():
    request = parse_input(
        {
            "prompt": "p",
            "approval": {"timeout_seconds": MAX_APPROVAL_TIMEOUT_SECONDS},
            "budget": {"max_steps": 10_000, "max_tokens": 10**10, "max_cost_usd": 1e6, "max_seconds": 31_536_000},
        },
        AgentRunInput,
    )
    assert request.approval.timeout_seconds == 31_536_000


def test_expiry_cannot_overflow():
    late = datetime(9999, 12, 30, tzinfo=UTC)
    assert expiry(late, timedelta(days=365)) == datetime.max.replace(tzinfo=UTC)
    assert expiry(datetime(2026, 1, 1, tzinfo=UTC), timedelta(days=1)) == datetime(2026, 1, 2, tzinfo=UTC)


async def test_out_of_range_timeout_fails_the_run_at_once(client, worker, fake_llm):
    handle = await client.start_workflow(
        "AgentLoopWorkflow",
        {"prompt": "save 1200", "approval": {"timeout_seconds": 1_000_000_000_000}},
        id=workflow_id("range"),
        task_queue=worker.task_queue,
    )
    with pytest.raises(WorkflowFailureError) as failed:
        await asyncio.wait_for(handle.result(), 20)
    cause = failed.value.cause
    assert getattr(cause, "type", None) == "InvalidInput" and getattr(cause, "non_retryable", False)
    assert "approval.timeout_seconds" in str(cause) and "31536000" in str(cause)
    assert "WORKFLOW_TASK_FAILED" not in await event_types(handle)
    failed_event = [
        e async for e in handle.fetch_history_events() if e.HasField("workflow_execution_failed_event_attributes")
    ]
    assert failed_event[0].workflow_execution_failed_event_attributes.failure.stack_trace == ""  # one line, no frames
    assert fake_llm.requests == []
    status = await handle.query("status")
    assert status["state"] == "failed"


async def test_largest_allowed_timeout_works(ts_env, ts_worker, fake_llm):
    fake_llm.push(Reply(tool_calls=[("write_note", NOTE)]), Reply(text="Nobody approved within a year."))
    handle = await ts_env.client.start_workflow(
        "AgentLoopWorkflow",
        {"prompt": "save 1200", "approval": {"timeout_seconds": MAX_APPROVAL_TIMEOUT_SECONDS}},
        id=workflow_id("year"),
        task_queue=ts_worker.task_queue,
    )
    result = await asyncio.wait_for(handle.result(), 30)
    assert result["status"] == "completed" and result["output"] == "Nobody approved within a year."
    assert fake_llm.requests[1].tool_results()[0]["content"] == "Not run: approval timed out"
    [(timeout, waited)] = await timer_durations(handle)
    assert timeout == timedelta(seconds=MAX_APPROVAL_TIMEOUT_SECONDS) and waited >= timedelta(days=365)
    fake_llm.assert_script_consumed()
