"""Budgets a fan-out cannot overspend: each branch gets its share of what is left; no approval of a spent plan."""

from __future__ import annotations

import asyncio
import dataclasses
from datetime import UTC, datetime

from devstack.scripted_http import estimate_tokens
from devstack.scripted_model import respond
from models.run import Budget, Usage
from tests.conftest import workflow_id
from tests.helpers import event_types
from tests.test_hybrid import PROMPT, hybrid_worker, outbox, role  # noqa: F401 (fixtures)
from workflows.ledger import RunLedger


def test_each_branch_gets_its_share_of_the_tokens_left():
    ledger = RunLedger(budget=Budget(max_tokens=1000), started_at=datetime(2026, 1, 1, tzinfo=UTC))
    ledger.usage = Usage(input_tokens=200, output_tokens=200)
    assert ledger.branch_allowance(4096, 4) == 150
    assert ledger.branch_allowance(4096, 1) == ledger.output_allowance(4096) == 600
    assert ledger.branch_allowance(100, 2) == 100
    ledger.usage = Usage(input_tokens=1000)
    assert ledger.branch_allowance(4096, 4) == 1


async def test_the_hybrid_asks_no_approval_once_the_specialists_spent_the_budget(
    client,
    hybrid_worker,  # noqa: F811 (fixture)
    fake_llm,
):
    fake_llm.responder = lambda body: dataclasses.replace(respond(body), output_tokens=1500)
    handle = await client.start_workflow(
        "HybridAgentWorkflow",
        {"prompt": PROMPT, "budget": {"max_tokens": 4000}},
        id=workflow_id("hybrid-spent"),
        task_queue=hybrid_worker.task_queue,
    )
    result = await asyncio.wait_for(handle.result(), 60)

    assert result["status"] == "budget_exceeded", result
    stopped = result["output"]["stopped"]
    assert "token budget" in stopped["reason"] and stopped["not_done"][-2:] == ["approval", "execution"], stopped
    assert (await handle.query("status"))["pending_approvals"] == []
    assert "TIMER_STARTED" not in await event_types(handle)  # no approval wait was ever opened
    assert "executor" not in [role(r.body) for r in fake_llm.requests]
    # Each specialist was given a share of what the planner left (half of it), not the whole default allowance.
    allowances = [r.body["max_tokens"] for r in fake_llm.requests if role(r.body) in ("budget", "analysis")]
    planner = fake_llm.requests[0].body
    planner_spend = estimate_tokens(planner["messages"]) + min(1500, planner["max_tokens"])
    assert allowances and max(allowances) <= (4000 - planner_spend) // 2, allowances
    assert result["usage"]["input_tokens"] + result["usage"]["output_tokens"] <= 4000
