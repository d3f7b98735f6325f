"""Spend limits across runs (SPEND_LIMITS) on a real dev server: exact ledgers, refusals, a killed worker."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from activities.spend_lease import release_all
from devstack.fake_anthropic import Reply, estimate_tokens
from models.spend_limits import LedgerView
from tests.conftest import workflow_id
from tests.helpers import eventually
from tests.spend_support import (
    customer,
    ledger,
    ledger_handle,
    limited_worker,
    limits_toml,
    run_loop,
    tokens_of,
    with_limits,
)

ROOT = Path(__file__).resolve().parents[1]


def test_a_bad_limits_file_stops_the_worker_naming_each_line(tmp_path):
    bad = tmp_path / "limits.toml"
    bad.write_text(
        '[limits."*"]\nmonth = { usd = 500.0 }\n\n[limits.default]\nday = { tokens = -5 }\n'
        'on_limit = "later"\n\n[limits."C1"]\nweekly = { usd = 1 }\n'
    )
    done = subprocess.run(
        [sys.executable, str(ROOT / "worker.py")],
        env={"PATH": "/usr/bin:/bin", "SPEND_LIMITS": str(bad), "TEMPORAL_ADDRESS": "127.0.0.1:9"},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(f"worker: SPEND_LIMITS file {bad}: line 5: limit 'default': day.tokens")
    assert "line 6: limit 'default': on_limit" in line and "line 9: limit 'C1': unknown key 'weekly'" in line


def spend_command(settings, address: str, who: str) -> str:
    """What `python -m spend --customer WHO` prints."""
    env = {"PATH": "/usr/bin:/bin", "TEMPORAL_ADDRESS": address, "SPEND_LIMITS": settings.spend_limits_file}
    done = subprocess.run(
        [sys.executable, "-m", "spend", "--customer", who],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_spend_settles_exactly_and_a_refused_call_ends_the_run_naming_the_limit(
    client, settings, fake_llm, tmp_path, dev_server
):
    who = customer()
    roomy = with_limits(settings, limits_toml(who, tokens=1_000_000), tmp_path)
    fake_llm.push(Reply(text="first"), Reply(text="second"))
    async with limited_worker(client, roomy):
        results = [await run_loop(client, settings, "spend", prompt=f"hello {n}", customer_id=who) for n in range(2)]
        # The worker reports its calls' settles in the background; a stopping worker sends the last and gives its
        # allowances back (release_all), which this does now, so that the ledger is read with nothing in flight.
        await release_all()
        view = await ledger(client, roomy, who)
    assert [r["status"] for r in results] == ["completed", "completed"]
    assert view.spent_tokens == sum(tokens_of(r) for r in results) and view.reservations == 0
    # The ledger runs on the ledgers' own queue, served by their own worker beside the main one.
    described = await ledger_handle(client, roomy, who).describe()
    assert described.task_queue == settings.spend_ledger_task_queue == f"{settings.task_queue}-spend-ledgers"

    tight = with_limits(settings, limits_toml(who, tokens=view.spent_tokens + 50), tmp_path)
    async with limited_worker(client, tight):
        stopped = await run_loop(client, settings, "spend-stopped", prompt="one more", customer_id=who)
        await release_all()
        after = await ledger(client, tight, who)
        printed = await asyncio.to_thread(spend_command, tight, dev_server.address, who)
    assert stopped["status"] == "budget_exceeded"
    assert stopped["limit"] == f"customer {who} day tokens"
    assert stopped["output"]["limit"] == stopped["limit"] and "spend limit" in stopped["output"]["summary"]
    assert stopped["usage"]["llm_calls"] == 0 and len(fake_llm.requests) == 2  # the refused call was never sent
    assert after.spent_tokens == view.spent_tokens and after.reservations == 0 and after.leased_tokens == 0
    [row] = printed.splitlines()
    cap = view.spent_tokens + 50
    assert (
        row.startswith(f"customer {who} day ")
        and f"tokens: spent {view.spent_tokens} reserved 0 remaining 50 of {cap}" in row
    )
    fake_llm.assert_script_consumed()


async def test_fifty_runs_racing_for_the_last_of_a_cap_spend_at_most_the_cap(client, settings, fake_llm, tmp_path):
    who = customer()
    # Replies use much of their allowance, so a reservation (input estimate + allowance) is near what is spent.
    billed: list[int] = []  # what the provider served, call by call: the truth the ledger must match

    def respond(body):
        billed.append(estimate_tokens(body["messages"]) + body["max_tokens"] * 3 // 4)
        return Reply(text="ok", delay=0.05, output_tokens=body["max_tokens"] * 3 // 4)

    fake_llm.responder = respond
    async with limited_worker(client, settings):  # no limits: what one run spends
        one = await run_loop(client, settings, "probe", prompt="race", budget={"max_tokens": 2000})
    cap = 20 * tokens_of(one)  # about twenty runs' worth
    billed.clear()
    capped = with_limits(settings, limits_toml(who, tokens=cap), tmp_path)
    # It takes 15-140 s on 2 cores. Before the ledgers had their own worker (service/ledger_worker.py) it hung in
    # about one run in five under load: Core dropped one of the ledger's buffered tasks and the ledger got no task
    # again. The timeout bounds the run and the worker's shutdown, so a hang fails here in minutes, not at CI's limit.
    async with asyncio.timeout(420), limited_worker(client, capped):
        results = await asyncio.gather(
            *(
                run_loop(client, settings, "race", prompt="race", customer_id=who, budget={"max_tokens": 2000})
                for _ in range(50)
            )
        )
        await release_all()
        view = await ledger(client, capped, who)
    statuses = [r["status"] for r in results]
    spent = sum(tokens_of(r) for r in results)
    assert set(statuses) == {"completed", "budget_exceeded"}, statuses
    # What the provider served never passes the cap, and the ledger counts all of it. On a starved machine an
    # attempt can be timed out (a missed heartbeat) after its call was served: its result is never recorded, so
    # the runs' own totals count less, while the ledger counts that call's whole reservation (spend_guard
    # `Hold.end`), at least what was billed. Without such timeouts the three are equal.
    assert sum(billed) <= view.spent_tokens <= cap and view.reservations == 0
    assert spent <= sum(billed)
    assert statuses.count("completed") <= 20
    print(
        f"race: cap {cap}, billed {sum(billed)} ({len(billed)} calls), runs report {spent}, "
        f"{statuses.count('completed')} of 50 completed"
    )


async def test_a_killed_workers_hold_is_taken_over_by_the_retry_and_counted_once(
    client, settings, fake_llm, tmp_path, worker_processes
):
    who = customer()
    limited = with_limits(settings, limits_toml(who, tokens=1_000_000), tmp_path)
    fake_llm.push(Reply(text="never arrives", delay=30), Reply(text="done"))
    doomed = worker_processes(SPEND_LIMITS=limited.spend_limits_file or "")
    handle = await client.start_workflow(
        "AgentLoopWorkflow",
        {"prompt": "hold", "customer_id": who},
        id=workflow_id("spend-kill"),
        task_queue=settings.task_queue,
    )
    await eventually(lambda: len(fake_llm.requests) == 1)

    async def reported() -> LedgerView | None:  # the worker reports the call it admitted in the background
        view = await ledger(client, limited, who)
        return view if view.reservations == 1 else None

    held = await eventually(reported, timeout=10)
    assert held.reserved_tokens > 0 and held.leased_tokens > 0  # the call's hold, and what else the worker may admit
    doomed.kill()
    async with limited_worker(client, limited):
        result = await handle.result()
        await release_all()
        view = await ledger(client, limited, who)
    assert result["status"] == "completed"
    assert view.reservations == 0 and view.spent_tokens == tokens_of(result)
    # What is still leased is the dead worker's allowance (the live one gave its own back when it stopped), which
    # lapses at its expiry (test_an_allowance_is_exact_and_lapses_when_its_worker_stops_reporting).
    assert view.leased_tokens <= held.leased_tokens


def raw_ledger(settings, name: str):
    """Update-with-start of a fresh ledger of its own on the worker's queue, for tests that drive its updates raw."""
    from temporalio.client import WithStartWorkflowOperation
    from temporalio.common import WorkflowIDConflictPolicy

    from models.spend_limits import LedgerCarry

    return WithStartWorkflowOperation(
        "SpendLedgerWorkflow",
        LedgerCarry(scope=customer(), window="day", period="test", resets_at="2099-01-01T00:00:00Z"),
        id=workflow_id(name),
        task_queue=settings.task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )


async def test_a_hold_nobody_settles_is_reclaimed_when_its_attempt_times_out(client, settings, tmp_path):
    from models.spend_limits import LedgerView, ReserveRequest, WindowCap

    async with limited_worker(client, settings):
        start = raw_ledger(settings, "spend-limit-reclaim")
        request = ReserveRequest(key="run/1/1", tokens=100, usd=0, cap=WindowCap(tokens=150), hold_seconds=1)
        granted = await client.execute_update_with_start_workflow(
            "reserve", request, start_workflow_operation=start, result_type=LedgerView
        )
        handle = await start.workflow_handle()
        again = await handle.execute_update(
            "reserve", request.model_copy(update={"key": "run/2/1"}), result_type=LedgerView
        )
        assert granted.granted and granted.reservations == 1 and not again.granted  # 100 + 100 > 150
        retry = await handle.execute_update(
            "reserve", request.model_copy(update={"attempt": 2}), result_type=LedgerView
        )
        assert retry.granted and retry.reserved_tokens == 100  # a retried attempt replaces its hold, never adds

        async def reclaimed() -> bool:
            view = await handle.query("state", result_type=LedgerView)
            return view.reservations == 0 and view.reclaimed == 1

        await eventually(reclaimed, timeout=10)
        await handle.terminate("test over")


async def test_an_allowance_is_exact_and_lapses_when_its_worker_stops_reporting(client, settings):
    """The ledger's side of a worker's allowance (activities/spend_lease.py), driven by raw `lease` reports."""
    from models.spend_lease import LeaseHold, LeaseReport, LeaseView
    from models.spend_limits import SettleRequest, WindowCap

    async with limited_worker(client, settings):
        start = raw_ledger(settings, "spend-limit-lease")
        cap = WindowCap(tokens=1000)
        first = LeaseReport(lease="w1", seq=1, need_tokens=100, want_tokens=400, cap=cap, ttl_seconds=60)
        grown = await client.execute_update_with_start_workflow(
            "lease", first, start_workflow_operation=start, result_type=LeaseView
        )
        assert grown.granted and grown.tokens == 400 and grown.ledger.leased_tokens == 400
        handle = await start.workflow_handle()

        async def report(r: LeaseReport) -> LeaseView:
            answer: LeaseView = await handle.execute_update("lease", r, result_type=LeaseView)
            return answer

        # w1 admitted two calls and settled one; its allowance is topped up toward 400, by at most half the room.
        hold = LeaseHold(key="run/1/1", tokens=150, usd=0, hold_seconds=60)
        second = LeaseReport(
            lease="w1",
            seq=2,
            holds=[hold, hold.model_copy(update={"key": "run/2/1"})],
            settles=[SettleRequest(key="run/1/1", tokens=90, usd=0)],
            want_tokens=400,
            cap=cap,
            ttl_seconds=60,
        )
        after = await report(second)
        # 1000 - 90 spent - 150 held = 760 room; 400 - 300 admitted = 100 left, grown by min(300, 660 / 2)
        assert after.ledger.spent_tokens == 90 and after.ledger.reserved_tokens == 150 and after.tokens == 400
        assert await report(second) == after  # the same report again (a retried RPC) changes nothing
        # Another worker needing more than the room left (360) is not granted. Were w1's allowance given back, it
        # would fit: "busy", ask again, and w1 is told to give back what it does not use (`squeeze`). A need past
        # the room and every allowance together (w3) is a refusal.
        w2 = LeaseReport(lease="w2", seq=1, need_tokens=400, want_tokens=400, cap=cap, ttl_seconds=1)
        refused = await report(w2)
        assert not refused.granted and refused.busy and refused.tokens == 0
        w3 = LeaseReport(lease="w3", seq=1, need_tokens=761, want_tokens=800, cap=cap, ttl_seconds=1)
        assert not (await report(w3)).busy
        told = await report(LeaseReport(lease="w1", seq=3, want_tokens=400, cap=cap, ttl_seconds=60))
        assert told.squeeze and told.tokens == after.tokens  # no more while another worker waits: only what it needs
        # w2 retrying run/2's call takes its hold over; while squeezing it gets what it needs, no more.
        retry = LeaseHold(key="run/2/1", attempt=2, tokens=150, usd=0, hold_seconds=60)
        taken = await report(w2.model_copy(update={"holds": [retry], "need_tokens": 10, "want_tokens": 50}))
        assert taken.granted and taken.ledger.reserved_tokens == 150 and taken.ledger.reservations == 1
        assert taken.tokens == 10
        # w2 stops reporting: its allowance lapses at its 1 s expiry, w1's stays; a release gives w1's back.
        assert taken.tokens > 0

        async def lapsed() -> LedgerView | None:
            view = await handle.query("state", result_type=LedgerView)
            return view if view.leased_tokens == after.tokens else None

        await eventually(lapsed, timeout=10)
        gone = await report(LeaseReport(lease="w1", seq=4, release=True, cap=cap, ttl_seconds=60))
        assert gone.tokens == 0 and gone.ledger.leased_tokens == 0 and gone.ledger.spent_tokens == 90
        await handle.terminate("test over")


async def test_an_allowance_made_again_after_the_worker_dropped_it_still_counts(
    client, settings, fake_llm, tmp_path, monkeypatch
):
    """A worker keeps a bounded number of allowances; one it drops and makes again (the customer comes back) must
    not have its reports taken for the dropped one's, which the ledger may still hold."""
    from activities import spend_guard

    monkeypatch.setattr(spend_guard, "ALLOWANCES_KEPT", 1)
    first, second = customer(), customer()
    both = limits_toml(first, tokens=1_000_000) + limits_toml(second, tokens=1_000_000)
    limited = with_limits(settings, both, tmp_path)
    fake_llm.push(*(Reply(text=f"answer {n}") for n in range(3)))
    async with limited_worker(client, limited):
        results = [
            await run_loop(client, settings, "spend-again", prompt="again", customer_id=who)
            for who in (first, second, first)  # the third call's allowance is made again: the first was dropped
        ]
        await release_all()
        views = [await ledger(client, limited, who) for who in (first, second)]
    assert views[0].spent_tokens == tokens_of(results[0]) + tokens_of(results[2])
    assert views[1].spent_tokens == tokens_of(results[1]) and views[0].reservations == views[1].reservations == 0


async def test_room_parked_in_another_workers_allowance_is_waited_for_not_refused(client, settings, tmp_path):
    """Two workers of one customer: the first's allowance holds most of what is left of the cap; the second's call
    needs more than the rest. It is not refused (the cap is not reached): it asks again while the first gives back."""
    from activities.spend_guard import SpendGuard
    from models.llm import LlmResponse
    from models.run import Usage

    who = customer()
    limited = with_limits(settings, limits_toml(who, tokens=1000), tmp_path)
    assert limited.spend_limits is not None

    class Worker(SpendGuard):  # a SpendGuard is one per worker process; its customer as a run would give it
        async def _customer(self) -> str | None:
            return who

    async def model() -> LlmResponse:
        return LlmResponse(
            model="anthropic:claude-haiku-5-5", stop_reason="end_turn", usage=Usage(input_tokens=100, output_tokens=50)
        )

    first, second = (Worker(client, limited.spend_limits, limited.spend_ledger_task_queue) for _ in range(2))
    async with limited_worker(client, limited):
        await first.call(model="anthropic:claude-haiku-5-5", input_tokens=100, max_output=100, make=model)

        async def parked() -> LedgerView | None:  # the first worker's reports landed: its allowance holds the room
            view = await ledger(client, limited, who)
            return view if view.spent_tokens == 150 and not view.reservations else None

        view = await eventually(parked, timeout=10)
        room = view.remaining()["tokens"]
        assert room is not None and view.leased_tokens >= 100, view
        bigger = int(room) + view.leased_tokens // 2  # past the room left, within it and the first's allowance
        await second.call(model="anthropic:claude-haiku-5-5", input_tokens=bigger - 100, max_output=100, make=model)
        await release_all()
        after = await ledger(client, limited, who)
    assert after.spent_tokens == 300 and after.leased_tokens == 0 and after.reservations == 0


async def test_a_stopping_worker_reports_its_last_calls_and_gives_its_allowance_back(
    client, settings, fake_llm, tmp_path
):
    """AgentServicePlugin.run_worker ends with release_all(): nothing waits for the worker's allowance to lapse."""
    who = customer()
    limited = with_limits(settings, limits_toml(who, tokens=1_000_000), tmp_path)
    fake_llm.push(Reply(text="last"))
    async with limited_worker(client, limited):
        result = await run_loop(client, settings, "spend-stop", prompt="last", customer_id=who)
    async with limited_worker(client, limited):  # another worker, to answer the ledger's query
        view = await ledger(client, limited, who)
    assert view.spent_tokens == tokens_of(result) and view.leased_tokens == 0 and view.reservations == 0
