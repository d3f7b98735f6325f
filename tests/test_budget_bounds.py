"""Budgets span the whole run (docs/budgets.md): shares of what is left, every model call fitted, failed spend counted.

The bound asserted: a run's total tokens stay within `max_tokens` plus, per branch, the error of its last call's
input estimate where that estimate came out low; its cost within `max_cost_usd` plus that error at input prices.
Against the fakes the errors are zero or negative (count_tokens answers what the fake bills; the chars/3 estimate
is above the fake's chars/4 billing), so the totals asserted here are within the budget itself.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import pytest
from temporalio.client import WorkflowFailureError

from devstack.fake_anthropic import Fault, Reply
from devstack.scripted_http import estimate_tokens as billed_tokens
from devstack.scripted_model import PLANNER_MARK
from models.budget import MIN_OUTPUT_TOKENS, Allowance, estimate_tokens, fit_call
from models.pricing import cost_usd
from models.run import Budget, Usage
from tests.conftest import workflow_id
from tests.test_blackbox import budget_answer, fake_openai  # noqa: F401 (fixture)
from workflows.ledger import RunLedger

FOUR_STEPS = [
    {"agent": "budget", "prompt": "I earn 5000."},
    {"agent": "analysis", "prompt": "1000 a month for 10 years at 5%."},
    {"agent": "budget", "prompt": "I earn 7000."},
    {"agent": "analysis", "prompt": "500 a month for 20 years at 4%."},
]
GREEDY_OUTPUT = 3000
"""What every fake reply would produce if let: the allowance (`max_tokens` / `max_output_tokens`) cuts it."""


def keeps_calling_tools(body: dict) -> Reply:
    """A specialist that never answers: only the budget can stop it."""
    tools = [t.get("name") or t["function"]["name"] for t in body.get("tools", [])]
    if "calculate_budget" in tools:
        return Reply(tool_calls=[("calculate_budget", {"monthly_income": 5000})], output_tokens=GREEDY_OUTPUT)
    return Reply(
        tool_calls=[("project_savings", {"monthly_amount": 1000, "years": 10, "annual_rate": 0.05})],
        output_tokens=GREEDY_OUTPUT,
    )


def anthropic_billed(fake) -> Usage:
    """What the fake Anthropic server billed: every reply's input and output tokens, priced."""
    total = Usage()
    for r in fake.requests:
        if r.served != "reply":
            continue
        tokens_in = billed_tokens(r.body["messages"])
        tokens_out = min(GREEDY_OUTPUT, r.body["max_tokens"])
        total = total.add(Usage(input_tokens=tokens_in, output_tokens=tokens_out, cost_usd=0))
    return total


async def run(client, queue, workflow, payload, prefix):
    handle = await client.start_workflow(workflow, payload, id=workflow_id(prefix), task_queue=queue)
    return handle, await asyncio.wait_for(handle.result(), 90)


# -- the pure decisions -------------------------------------------------------------------------


def test_a_call_gets_what_is_left_after_its_input_or_is_not_made():
    fit = fit_call(
        tokens_left=250, cost_left=1.0, input_estimate=50, model="anthropic:claude-sonnet-5-5", default_output=4096
    )
    assert fit.output_tokens == 200 and fit.refused is None
    assert fit_call(tokens_left=60, cost_left=1.0, input_estimate=50, model=None, default_output=4096).refused
    # $0.001 at sonnet prices: 100 input tokens cost $0.0003, the remaining $0.0007 buys 46 output tokens.
    by_cost = fit_call(
        tokens_left=10**6, cost_left=0.001, input_estimate=100, model="anthropic:claude-sonnet-5-5", default_output=4096
    )
    assert by_cost.output_tokens == 46
    assert cost_usd("anthropic:claude-sonnet-5-5", 100, by_cost.output_tokens) <= 0.001
    refused = fit_call(
        tokens_left=10**6, cost_left=0.0001, input_estimate=30, model="anthropic:claude-sonnet-5-5", default_output=4096
    )
    assert refused.refused and refused.refused.startswith("cost budget too small")
    assert estimate_tokens("x" * 300) == 101  # three characters a token, rounded up


def test_each_branch_gets_its_share_of_tokens_cost_and_steps_left():
    ledger = RunLedger(
        budget=Budget(max_tokens=1000, max_cost_usd=0.01, max_steps=20), started_at=datetime(2026, 1, 1, tzinfo=UTC)
    )
    ledger.usage, ledger.steps = Usage(input_tokens=200, output_tokens=200, cost_usd=0.002), 4
    assert ledger.share(4) == Allowance(max_tokens=150, max_cost_usd=0.002, max_steps=4)
    assert ledger.share(1) == Allowance(max_tokens=600, max_cost_usd=0.008, max_steps=16)
    ledger.usage = Usage(input_tokens=2000, cost_usd=0.02)
    assert ledger.share(3) == Allowance(max_tokens=0, max_cost_usd=0.0, max_steps=5)


# -- pattern A: four black boxes at once --------------------------------------------------------


@pytest.mark.parametrize(
    "budget",
    [{"max_tokens": 1000}, {"max_cost_usd": 0.004}, {"max_tokens": 100, "max_cost_usd": 0.0001}],
    ids=["tokens", "cost", "tiny"],
)
async def test_four_claude_black_boxes_stay_within_the_run_budget(client, worker, fake_llm, budget):
    fake_llm.responder = keeps_calling_tools
    _, result = await run(
        client,
        worker.task_queue,
        "BlackBoxAgentWorkflow",
        {"prompt": "plan", "steps": FOUR_STEPS, "parallel": True, "budget": budget},
        "budget-fan-out-claude",
    )

    assert result["status"] == "budget_exceeded", result
    usage = Usage.model_validate(result["usage"])
    max_tokens = budget.get("max_tokens", 200_000)
    max_cost = budget.get("max_cost_usd", 5.0)
    assert usage.total_tokens <= max_tokens and usage.cost_usd <= max_cost + 1e-8, usage
    billed = anthropic_billed(fake_llm)
    assert (usage.input_tokens, usage.output_tokens) == (billed.input_tokens, billed.output_tokens)  # all counted
    assert fake_llm.counted, "every call's input was counted first (count_tokens)"
    assert all(r.body["max_tokens"] <= max_tokens // 4 for r in fake_llm.requests)
    print(f"claude fan-out {budget}: {usage.total_tokens} tokens, ${usage.cost_usd} in {usage.llm_calls} calls")
    if "tiny" in json.dumps(budget) or max_tokens == 100:
        assert fake_llm.requests == []  # no call could fit: none was made


async def test_four_agents_sdk_black_boxes_stay_within_the_run_budget(client, fake_openai, worker):  # noqa: F811
    fake_openai.responder = keeps_calling_tools
    fake = fake_openai
    _, result = await run(
        client,
        worker.task_queue,
        "BlackBoxAgentWorkflow",
        {
            "prompt": "plan",
            "model": "openai:gpt-5",
            "steps": FOUR_STEPS,
            "parallel": True,
            "budget": {"max_tokens": 2000},
        },
        "budget-fan-out-openai",
    )

    assert result["status"] == "budget_exceeded", result
    usage = Usage.model_validate(result["usage"])
    assert 0 < usage.total_tokens <= 2000, usage
    caps = [r.body.get("max_output_tokens") for r in fake.requests]
    assert caps and all(isinstance(c, int) and c <= 500 for c in caps), caps
    billed_out = sum(min(GREEDY_OUTPUT, c) for c in caps)
    assert usage.output_tokens == billed_out
    print(f"agents sdk fan-out: {usage.total_tokens} tokens in {usage.llm_calls} calls")


# -- hybrid: three specialists at once ----------------------------------------------------------

THREE_CONSULTATIONS = {
    "summary": "Ask three specialists.",
    "consultations": [
        {"agent": "budget", "prompt": "I earn 5000."},
        {"agent": "analysis", "prompt": "1000 a month for 10 years."},
        {"agent": "budget", "prompt": "I earn 6000."},
    ],
    "execution": "Answer briefly.",
}


def planner_then_greedy_specialists(body: dict) -> Reply:
    if PLANNER_MARK in (body.get("system") or ""):
        return Reply(text=json.dumps(THREE_CONSULTATIONS))
    return keeps_calling_tools(body)


@pytest.mark.parametrize("budget", [{"max_tokens": 3000}, {"max_cost_usd": 0.02}], ids=["tokens", "cost"])
async def test_a_hybrid_with_three_specialists_stays_within_the_run_budget(client, worker, fake_llm, budget):
    fake_llm.responder = planner_then_greedy_specialists
    handle, result = await run(
        client, worker.task_queue, "HybridAgentWorkflow", {"prompt": "plan my money", "budget": budget}, "budget-hybrid"
    )

    assert result["status"] == "budget_exceeded", result
    assert (await handle.query("status"))["pending_approvals"] == []
    usage = Usage.model_validate(result["usage"])
    assert usage.total_tokens <= budget.get("max_tokens", 200_000), usage
    assert usage.cost_usd <= budget.get("max_cost_usd", 5.0) + 1e-8, usage
    specialists = [r for r in fake_llm.requests if PLANNER_MARK not in (r.body.get("system") or "")]
    assert len({json.dumps(r.body["messages"][0]) for r in specialists}) == 3  # all three ran, within their shares
    print(f"hybrid {budget}: {usage.total_tokens} tokens, ${usage.cost_usd} in {usage.llm_calls} calls")


# -- spend of failed attempts -------------------------------------------------------------------


async def test_a_retried_black_box_counts_the_spend_of_its_failed_attempt(client, worker, fake_llm):
    fake_llm.push(
        Reply(tool_calls=[("calculate_budget", {"monthly_income": 5000})], output_tokens=50),
        Fault(500, "provider fell over at turn 2"),
        Reply(tool_calls=[("calculate_budget", {"monthly_income": 5000})], output_tokens=60),
        Reply(text=budget_answer(), output_tokens=70),
    )
    _, result = await run(
        client,
        worker.task_queue,
        "BlackBoxAgentWorkflow",
        {"agent": "budget", "prompt": "I earn 5000."},
        "budget-retry",
    )

    assert result["status"] == "completed", result
    fake_llm.assert_script_consumed()
    assert result["usage"]["llm_calls"] == 3  # the failed attempt's one reply, then the retry's two
    assert result["usage"]["output_tokens"] == 50 + 60 + 70
    assert result["usage"]["input_tokens"] == fake_llm.input_tokens_charged


async def test_a_black_box_that_finally_fails_still_counts_what_it_spent(client, worker, fake_llm):
    fake_llm.push(
        Reply(tool_calls=[("calculate_budget", {"monthly_income": 5000})], output_tokens=50),
        Fault(400, "refused at turn 2"),
    )
    handle = await client.start_workflow(
        "BlackBoxAgentWorkflow",
        {"agent": "budget", "prompt": "I earn 5000."},
        id=workflow_id("budget-failed"),
        task_queue=worker.task_queue,
    )
    with pytest.raises(WorkflowFailureError):
        await asyncio.wait_for(handle.result(), 60)

    status = await handle.query("status")
    assert status["usage"]["llm_calls"] == 1 and status["usage"]["output_tokens"] == 50, status


# -- pattern B: a call that cannot fit is not made ----------------------------------------------


async def test_a_loop_stops_before_a_call_its_budget_cannot_fit(client, worker, fake_llm):
    fake_llm.push(
        Reply(
            text="Let me calculate.",
            tool_calls=[("calculator", {"expression": "6000 * 0.2"})],
            output_tokens=GREEDY_OUTPUT,
        )
    )
    _, result = await run(
        client,
        worker.task_queue,
        "AgentLoopWorkflow",
        {"prompt": "What is 6000 * 0.2?", "budget": {"max_tokens": 2000}},
        "budget-loop",
    )

    assert result["status"] == "budget_exceeded", result
    assert len(fake_llm.requests) == 1  # the second call was estimated, found not to fit, and never sent
    fake_llm.assert_script_consumed()
    assert result["output"]["reason"].startswith("token budget too small for the next model call"), result
    assert (
        result["usage"]["tool_calls"] == 1
        and result["usage"]["input_tokens"] + result["usage"]["output_tokens"] <= 2000
    )


async def test_a_loop_whose_cost_budget_cannot_pay_the_first_call_makes_none(client, worker, fake_llm):
    _, result = await run(
        client,
        worker.task_queue,
        "AgentLoopWorkflow",
        {"prompt": "What is 6000 * 0.2?", "budget": {"max_tokens": 100, "max_cost_usd": 0.0001}},
        "budget-loop-cost",
    )

    assert result["status"] == "budget_exceeded", result
    assert fake_llm.requests == [] and result["usage"]["llm_calls"] == 0
    assert "too small for the next model call" in result["output"]["reason"]
    assert MIN_OUTPUT_TOKENS > 0
