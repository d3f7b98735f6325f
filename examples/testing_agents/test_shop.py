"""Testing your own agents with the test kit: scripted model replies in, result, tool calls, approvals and spend out.

Run: `python -m pytest examples/testing_agents -q` (no network; the kit starts a time-skipping Temporal server,
a worker with agents.toml and shop_tools.py, and scripted model servers speaking both providers' APIs).
"""

from __future__ import annotations

from testkit import Reply


async def test_the_agent_looks_the_order_up_then_refunds_it_once_approved(agent_kit):
    agent_kit.script(
        Reply(text="Let me look it up.", tool_calls=[("order_total", {"order_id": "A1"})]),
        Reply(tool_calls=[("refund_order", {"order_id": "A1", "amount": 42.5})]),
        Reply(text="Order A1 was refunded: 42.50 EUR."),
    )

    run = await agent_kit.run("Please refund order A1.", agent="shop")

    assert run.status == "completed" and run.output == "Order A1 was refunded: 42.50 EUR."
    assert run.tool_names == ["order_total", "refund_order"]
    assert run.tool_calls[0].output == "42.50 EUR"
    assert [a["proposal"]["tool"] for a in run.approvals] == ["refund_order"]
    assert 0 < run.cost_usd < 0.01
    # The Anthropic model was called with streaming on, as in production.
    assert all(r.body.get("stream") for r in agent_kit.anthropic.requests)


async def test_a_rejected_refund_is_not_made(agent_kit):
    agent_kit.script(
        Reply(tool_calls=[("refund_order", {"order_id": "B2", "amount": 10.0})]),
        Reply(text="I could not refund order B2: the refund was not approved."),
    )

    run = await agent_kit.run("Refund order B2.", agent="shop", approve=False)

    assert run.status == "completed" and "not approved" in run.output
    assert run.tool_calls == []  # a rejected call never reaches the tool
    assert [a["approved"] for a in run.approvals] == [False]


async def test_the_openai_agent_speaks_the_responses_api(agent_kit):
    agent_kit.script(
        Reply(tool_calls=[("order_total", {"order_id": "B2"})]),
        Reply(text="Order B2 comes to 10.00 EUR."),
        provider="openai",
    )

    run = await agent_kit.run("How much is order B2?", agent="shop_openai", model="openai:gpt-5")

    assert run.output == "Order B2 comes to 10.00 EUR." and run.tool_names == ["order_total"]
    assert len(agent_kit.openai.requests) == 2 and not agent_kit.anthropic.requests
    assert all(r.body.get("stream") for r in agent_kit.openai.requests)  # streamed, as in production
