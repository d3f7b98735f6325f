"""`on_limit = "wait"`: a refused run waits durably for its window to reset, then goes on (real dev server).

The worker's clock (activities/spend_guard.py `clock`) is moved to seconds before midnight UTC, so the day window
resets during the test; the run's wait is a workflow timer of the time the refusal reported.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

from devstack.fake_anthropic import Reply
from progress.reader import follow_events
from tests.conftest import workflow_id
from tests.helpers import eventually
from tests.spend_support import customer, ledger, limited_worker, limits_toml, tokens_of, with_limits
from tools.finance import future_value

BUDGET = {"max_tokens": 1500}


async def test_a_run_waits_for_the_window_reset_then_finishes(client, settings, fake_llm, tmp_path, monkeypatch):
    from activities import spend_guard

    who, probe_customer = customer(), customer()
    fake_llm.responder = lambda body: Reply(text="ok", delay=1.0, output_tokens=body["max_tokens"] * 3 // 4)
    probing = with_limits(settings, limits_toml(probe_customer, tokens=10**9), tmp_path)
    async with limited_worker(client, probing):  # what one run spends, and what its call reserves
        handle = await client.start_workflow(
            "AgentLoopWorkflow",
            {"prompt": "wait", "budget": BUDGET, "customer_id": probe_customer},
            id=workflow_id("probe"),
            task_queue=settings.task_queue,
        )

        async def held() -> int:
            return (await ledger(client, probing, probe_customer)).reserved_tokens

        reserved = await eventually(held, timeout=10)
        one = tokens_of(await handle.result())
    # One reservation fits a fresh day, but not beside the first run's spend.
    limited = with_limits(settings, limits_toml(who, on_limit="wait", tokens=reserved + one - 1), tmp_path)
    midnight = (datetime.now(UTC) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    shift = [timedelta(0)]

    def end_day_in(seconds: float) -> None:  # the worker's day ends `seconds` from now
        shift[0] = midnight - timedelta(seconds=seconds) - datetime.now(UTC)

    end_day_in(3600)
    monkeypatch.setattr(spend_guard, "clock", lambda: datetime.now(UTC) + shift[0])
    run = {"prompt": "wait", "customer_id": who, "budget": BUDGET}
    async with limited_worker(client, limited):
        first_handle = await client.start_workflow(
            "AgentLoopWorkflow", run, id=workflow_id("spend-first"), task_queue=settings.task_queue
        )
        first = await asyncio.wait_for(first_handle.result(), timeout=30)  # a refusal here would wait for midnight
        end_day_in(4)  # still the same day as the first run's spend
        waiting = await client.start_workflow(
            "AgentLoopWorkflow", run, id=workflow_id("spend-wait"), task_queue=settings.task_queue
        )

        async def waits() -> dict:
            status = await waiting.query("status")
            return status if status.get("waiting_for") else {}

        status = await eventually(waits, timeout=10)
        assert status["waiting_for"].startswith(f"spend limit customer {who} day tokens to reset at")
        assert status["spend_limit"]["waiting_until"] and status["state"] == "running"
        second = await asyncio.wait_for(waiting.result(), timeout=30)
        events = [e async for e in follow_events(client, waiting.id)]  # the run's stream answers while a worker polls
    assert first["status"] == "completed" and second["status"] == "completed"
    assert tokens_of(second) == one
    [wait] = [e for e in events if e["type"] == "spend_limit_wait"]
    assert wait["limit"] == f"customer {who} day tokens" and wait["resets_at"]


CLAUDE = "anthropic:claude-sonnet-5-5"
SAVINGS_ARGS = {"monthly_amount": 1000, "years": 10, "annual_rate": 0.05}


def savings_agent(on_first_call=lambda: None):
    """The `analysis` black box's two model calls: the savings tool, then its answer; each takes a second."""

    def respond(body: dict) -> Reply:
        if not any(isinstance(m.get("content"), list) for m in body["messages"][1:]):
            on_first_call()
            return Reply(tool_calls=[("project_savings", SAVINGS_ARGS)], delay=1.0)
        value = future_value(1000, 10, 0.05)
        answer = {**SAVINGS_ARGS, "projected_value": value, "summary": f"About {value:.0f} after 10 years."}
        return Reply(text=json.dumps(answer), delay=1.0)

    return respond


async def test_a_black_box_refused_mid_agent_waits_then_goes_on_from_its_checkpoint(
    client, settings, fake_llm, tmp_path, monkeypatch
):
    from activities import spend_guard

    who, probe_customer = customer(), customer()
    fake_llm.responder = savings_agent()
    run = {"agent": "analysis", "prompt": "1000/month, 10y, 5%", "model": CLAUDE}
    probing = with_limits(settings, limits_toml(probe_customer, tokens=10**9), tmp_path)
    async with limited_worker(client, probing):  # what each call reserves and spends
        handle = await client.start_workflow(
            "BlackBoxAgentWorkflow",
            {**run, "customer_id": probe_customer},
            id=workflow_id("probe"),
            task_queue=settings.task_queue,
        )
        seen: list[tuple[int, int]] = []

        async def second_call_held() -> tuple[int, int] | None:
            view = await ledger(client, probing, probe_customer)
            seen.append((view.spent_tokens, view.reserved_tokens))
            return seen[-1] if view.spent_tokens and view.reserved_tokens else None

        first_spent, second_held = await eventually(second_call_held, timeout=15, interval=0.1)
        first_held = next(held for spent, held in seen if held and not spent)
        whole = tokens_of(await handle.result())
    # The first call fits; the second does not beside it, but does in a fresh day (the same conversation asks the
    # same reservations again).
    cap = second_held + first_spent - 1
    assert first_held <= cap, (first_held, first_spent, second_held)
    limited = with_limits(settings, limits_toml(who, on_limit="wait", tokens=cap), tmp_path)
    midnight = (datetime.now(UTC) + timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    shift = [midnight - timedelta(hours=1) - datetime.now(UTC)]

    def day_ends_soon() -> None:  # while the first call is answered: the second is refused, then the day ends
        shift[0] = midnight - timedelta(seconds=8) - datetime.now(UTC)

    monkeypatch.setattr(spend_guard, "clock", lambda: datetime.now(UTC) + shift[0])
    fake_llm.responder = savings_agent(on_first_call=day_ends_soon)
    served_before = len(fake_llm.requests)
    async with limited_worker(client, limited):
        waiting = await client.start_workflow(
            "BlackBoxAgentWorkflow",
            {**run, "customer_id": who},
            id=workflow_id("bb-wait"),
            task_queue=settings.task_queue,
        )

        async def waits() -> dict:
            status = await waiting.query("status")
            return status if status.get("waiting_for") else {}

        status = await eventually(waits, timeout=15)
        assert status["waiting_for"].startswith(f"spend limit customer {who} day tokens to reset at")
        result = await asyncio.wait_for(waiting.result(), timeout=40)
    assert result["status"] == "completed", result
    assert result["output"]["projected_value"] == future_value(1000, 10, 0.05)
    # Resumed from its checkpoint: the first call was not made (nor paid) again, the tool did not run again.
    assert [r.served for r in fake_llm.requests[served_before:]] == ["reply", "reply"]
    assert result["usage"]["llm_calls"] == 2 and result["usage"]["tool_calls"] == 1
    assert tokens_of(result) == whole
