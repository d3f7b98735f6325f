"""Spend limits without a server: which limits a call meets, windows, fairness, the file's line-numbered errors."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from config.spend_limits import SpendLimitsInvalid, read_spend_limits, spend_limit_problems
from models.spend_limits import LedgerView, SpendLimits, fairness, period_end, period_of

FILE = """
[limits."*"]
month = { usd = 500.0 }
[limits.default]
day = { tokens = 2000000, usd = 20.0 }
[limits."C123"]
month = { usd = 50.0 }
on_limit = "wait"
fairness_weight = 2.0
"""


def limits() -> SpendLimits:
    import tomllib

    return SpendLimits.model_validate(tomllib.loads(FILE))


def test_a_named_customer_meets_its_own_limit_and_the_deployments():
    refs = limits().applicable("C123")
    assert [(r.label, r.window, r.on_limit) for r in refs] == [
        ("customer C123", "month", "wait"),
        ("all customers", "month", "fail"),
    ]


def test_other_customers_and_runs_without_one_meet_default_under_their_own_id():
    assert [(r.label, r.window) for r in limits().applicable("C9")][:1] == [("customer C9", "day")]
    assert [r.scope for r in limits().applicable(None)] == ["-", "*"]


def test_windows_are_utc_calendar_periods():
    now = datetime(2026, 12, 31, 23, 59, tzinfo=UTC)
    assert period_of("day", now) == "2026-12-31" and period_of("month", now) == "2026-12"
    assert period_end("day", now) == datetime(2027, 1, 1, tzinfo=UTC) == period_end("month", now)


def test_fairness_key_is_the_customer_weighted_from_the_file():
    assert fairness(limits(), "C123").fairness_weight == 2.0 and fairness(limits(), "C123").fairness_key == "C123"
    assert fairness(limits(), None).fairness_key == "-" and fairness(None, "x").fairness_weight == 1.0


def test_each_problem_names_its_line(tmp_path):
    text = '[limits.default]\nday = {}\n[limits."C1"]\nmonth = { usd = "a lot" }\non_limit = "maybe"\n[other]\n'
    problems = spend_limit_problems(text)
    assert problems[0].startswith("1: unknown top-level key 'other'")
    assert any(p.startswith("2: limit 'default': day: a window needs tokens and/or usd") for p in problems)
    assert any(p.startswith("4: limit 'C1': month.usd") for p in problems)
    assert any(p.startswith("5: limit 'C1': on_limit") for p in problems)
    assert spend_limit_problems("[limits.default\n")[0].startswith("1: TOML syntax error")
    path = tmp_path / "limits.toml"
    path.write_text(text)
    with pytest.raises(SpendLimitsInvalid, match=rf"^SPEND_LIMITS file {path}: line 1: "):
        read_spend_limits(str(path))
    assert read_spend_limits(None) is None


class _Allowance:
    """Stands in for a worker's allowance in a ledger: records what each settle counts."""

    def __init__(self, ref) -> None:
        self.ref = ref
        self.settled: list[int] = []
        self.view = LedgerView()

    def settle(self, settle):
        self.settled.append(settle.tokens)


@pytest.mark.parametrize(
    ("usage", "error", "counted"),
    [
        ((40, 7), None, 47),  # a reply: what it was billed
        (None, RuntimeError("overloaded"), 0),  # a provider's error: nothing billed, the hold released
        (None, asyncio.CancelledError(), 100 + 900),  # cut short by a cancel: the whole reservation
        ((40, 7), asyncio.CancelledError(), 47),  # a reply that arrived before the cancel: what it was billed
    ],
)
async def test_how_a_call_ends_decides_what_its_hold_counts(usage, error, counted):
    from activities.spend_guard import Hold

    [ref] = SpendLimits.model_validate({"limits": {"C1": {"day": {"tokens": 10_000}}}}).applicable("C1")
    allowance = _Allowance(ref)
    hold = Hold([allowance], "run/1@0/1", 1, "anthropic:claude-sonnet-5-5", (100, 900))  # type: ignore[list-item]
    await hold.end(usage, error)
    await hold.end(usage, error)  # at most once
    assert allowance.settled == [counted]


async def test_a_report_is_sent_again_until_its_ledger_takes_it():
    from temporalio.service import RPCError, RPCStatusCode

    from activities.spend_lease import until_landed

    answers: list[object] = [
        RPCError("limit on number of concurrent in-flight updates", RPCStatusCode.RESOURCE_EXHAUSTED, b""),
        RPCError("workflow update was aborted", RPCStatusCode.UNAVAILABLE, b""),
        "view",
    ]

    async def update():
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert await until_landed(update, timedelta(seconds=30)) == "view" and answers == []
