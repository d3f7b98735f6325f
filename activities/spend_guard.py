"""Reserve before, settle after: the one function every model call of the product goes through (`SpendGuard.call`).

`GuardedProvider` (activities/guarded_provider.py) wraps each `LlmProvider`, so the loop's `call_llm`, the planner,
screening, summaries and the Claude black box are guarded without knowing it; the OpenAI black box reserves
itself and ends its holds by the same rule (`Hold.end`; activities/black_box/openai_model.py), since the Agents
SDK makes its calls through its own client.

A call reserves its estimate (input estimate plus its output allowance, priced by models/pricing.py) from every
limit that applies (models/spend_limits.py): from this worker's allowance in each limit's ledger workflow
(workflows/spend_ledger.py), which activities/spend_lease.py keeps topped up and reports to in the background.
A call no ledger will make room for raises `SpendLimitReached` (a non-retryable ApplicationError naming the
limit), having taken nothing; the workflow ends the run `budget_exceeded` (or waits).
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from activities.spend_lease import Allowance
from models.llm import LlmResponse
from models.pricing import cost_usd
from models.search_attributes import CUSTOMER_ID
from models.spend_lease import LeaseHold
from models.spend_limits import (
    LedgerView,
    LimitRef,
    SettleRequest,
    SpendLimits,
    SpendNote,
    ledger_id,
    period_end,
    tightest,
)

SPEND_LIMIT_REACHED = "SpendLimitReached"
"""The ApplicationError type of a refused reservation; workflows/calls.py turns it into the run's end."""
DEFAULT_HOLD = timedelta(minutes=15)
"""How long a hold lasts outside an activity (tools, benches): as long as the longest model-call activity."""
CUSTOMERS_CACHED = 4096
ALLOWANCES_KEPT = 1024


def clock() -> datetime:
    """Now, UTC: which window period a call counts in (tests move it to just before a reset)."""
    return datetime.now(UTC)


class SpendGuard:
    """Reserves and settles model calls against the worker's SPEND_LIMITS through the ledger workflows."""

    def __init__(self, client: Client, limits: SpendLimits, task_queue: str) -> None:
        self._client = client
        self._limits = limits
        self._task_queue = task_queue
        self._customers: OrderedDict[str, str | None] = OrderedDict()
        self._calls = itertools.count(1)
        self._lease = f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:12]}"
        """This worker's name for its allowances in the ledgers (each gets a number after it)."""
        self._leases = itertools.count(1)
        self._allowances: dict[str, Allowance] = {}

    async def call(
        self, *, model: str, input_tokens: int, max_output: int, make: Callable[[], Awaitable[LlmResponse]]
    ) -> LlmResponse:
        """`make()` once its estimate is reserved from every applicable limit; its actual spend settled after.

        A failed call settles nothing spent (providers do not bill refused calls) and releases its holds; a killed
        one's holds are taken over by its retry (same key) or reclaimed at its attempt's timeout.
        """
        hold = await self.reserve(model=model, input_tokens=input_tokens, max_output=max_output)
        try:
            response = await make()
        except BaseException as exc:
            await asyncio.shield(hold.end(None, exc))
            raise
        # Shielded: a cancel arriving now (a timed-out attempt) must not lose the spend of a call that was made.
        return await asyncio.shield(hold.settled(response))

    async def reserve(self, *, model: str, input_tokens: int, max_output: int) -> Hold:
        """Hold the call's estimate in every applicable limit, or raise `SpendLimitReached` naming one.

        The estimate is taken from this worker's allowance in each limit's ledger (activities/spend_lease.py): no
        round trip unless an allowance must grow first. It is taken from all of them at once or from none.
        """
        refs = self._limits.applicable(await self._customer())
        key, attempt = self._key()
        at = clock()
        allowances = [self._allowance(ref, at) for ref in refs]
        hold = Hold(allowances, key, attempt, model, (input_tokens, max_output))
        if not refs:
            return hold
        tokens, usd = input_tokens + max_output, cost_usd(model, input_tokens, max_output)
        while not all(a.fits(tokens, usd) for a in allowances):
            answers = await asyncio.gather(*(a.ensure(tokens, usd) for a in allowances))
            for allowance, answer in zip(allowances, answers, strict=True):
                if answer is not None and not answer.granted:
                    raise _refusal(allowance.ref, answer.ledger, at, {"tokens": tokens, "usd": usd})
        taken = LeaseHold(key=key, attempt=attempt, tokens=tokens, usd=usd, hold_seconds=_hold().total_seconds())
        for allowance in allowances:  # no await since the check above: all or none
            allowance.take(taken)
        return hold

    def _allowance(self, ref: LimitRef, at: datetime) -> Allowance:
        ledger = ledger_id(ref, at)
        found = self._allowances.get(ledger)
        if found is None:
            # Its own lease id: one dropped below may still be reporting, and a ledger applies each lease's reports
            # in order, so two allowances under one id would have one's reports taken for the other's.
            lease = f"{self._lease}/{next(self._leases)}"
            found = self._allowances[ledger] = Allowance(self._client, ref, at, lease, self._task_queue)
            if len(self._allowances) > ALLOWANCES_KEPT:  # the oldest: it gives its allowance back once idle
                self._allowances.pop(next(iter(self._allowances)))
        return found

    def _key(self) -> tuple[str, int]:
        """One key per model call of an activity (shared by its attempts), and the attempt.

        The activity is told apart by its id and when it was first scheduled: a black box that waited for a
        spend reset is scheduled again under the same id (to find its checkpoint), and its calls are new ones.
        """
        if not activity.in_activity():
            return f"local/{id(self)}/{next(self._calls)}", 1
        info = activity.info()
        calls = _calls_of_attempt()
        scheduled = int(info.scheduled_time.timestamp() * 1000)
        return f"{info.workflow_id}/{info.activity_id}@{scheduled}/{calls}", info.attempt

    async def _customer(self) -> str | None:
        """The run's `customer_id`, from its CustomerId search attribute (looked up once per run per worker)."""
        if not activity.in_activity():
            return None
        info = activity.info()
        if not info.workflow_id:  # a standalone activity belongs to no run: no customer
            return None
        run = f"{info.workflow_id}/{info.workflow_run_id}"
        if run not in self._customers:
            handle = self._client.get_workflow_handle(info.workflow_id, run_id=info.workflow_run_id)
            described = await handle.describe()
            self._customers[run] = described.typed_search_attributes.get(CUSTOMER_ID)
            while len(self._customers) > CUSTOMERS_CACHED:
                self._customers.popitem(last=False)
        return self._customers[run]


class Hold:
    """One call's reservations: `settle` its actual spend, or `release` them (a failed call); at most once."""

    def __init__(
        self,
        allowances: list[Allowance],
        key: str,
        attempt: int,
        model: str,
        estimate: tuple[int, int],
    ) -> None:
        self._allowances, self._key, self._attempt, self._model = allowances, key, attempt, model
        self._estimate = estimate
        """(input estimate, output allowance): what the hold reserved."""
        self._done = not allowances

    async def end(self, usage: tuple[int, int] | None, error: BaseException | None) -> None:
        """The one rule for how a call ends, every caller's: its reply's (input, output) usage is settled; a call
        that failed with an error (the provider refused or failed it) is released, as providers bill no failed
        call; a call cut short by a cancel (the run's, or a timed-out attempt's) counts its whole reservation, since
        the provider may have billed all of it and a cap must never be passed by what nobody counted."""
        if usage is not None:
            await self.settle(*usage)
        elif error is not None and not isinstance(error, Exception):
            await self.settle(*self._estimate)
        else:
            await self.release()

    async def settle(self, input_tokens: int, output_tokens: int) -> SpendNote | None:
        """Count what the call was billed, once, in every ledger it held in (reported in the background); the
        tightest limit as its ledgers last answered."""
        if self._done:
            return None
        self._done = True
        usd = cost_usd(self._model, input_tokens, output_tokens)
        settle = SettleRequest(key=self._key, attempt=self._attempt, tokens=input_tokens + output_tokens, usd=usd)
        for allowance in self._allowances:
            allowance.settle(settle)
        views = [a.view for a in self._allowances]
        refs = [a.ref for a in self._allowances]
        return tightest(refs, [v for v in views if v is not None]) if None not in views else None

    async def release(self) -> None:
        """Give the holds back: the call was not made, or failed unbilled."""
        await self.settle(0, 0)

    async def settled(self, response: LlmResponse) -> LlmResponse:
        """`response` after settling what it reports, noting the run's tightest limit in it (for its status)."""
        note = await self.settle(response.usage.input_tokens, response.usage.output_tokens)
        if note is not None:
            response.spend_limit = note
        return response


_ATTEMPT_CALLS: dict[tuple[str, str, float, int], int] = {}


def _calls_of_attempt() -> int:
    """1, 2, ... for the model calls one activity attempt makes (a black box makes many)."""
    info = activity.info()
    slot = (info.workflow_id or "", info.activity_id, info.scheduled_time.timestamp(), info.attempt)
    _ATTEMPT_CALLS[slot] = _ATTEMPT_CALLS.get(slot, 0) + 1
    if len(_ATTEMPT_CALLS) > 10000:  # attempts long finished: their counts are never asked again
        for old in list(_ATTEMPT_CALLS)[:5000]:
            del _ATTEMPT_CALLS[old]
    return _ATTEMPT_CALLS[slot]


def _hold() -> timedelta:
    """How long this attempt may live: its start-to-close timeout (a dead attempt's hold is reclaimed after it)."""
    if activity.in_activity():
        info = activity.info()
        return info.start_to_close_timeout or info.schedule_to_close_timeout or DEFAULT_HOLD
    return DEFAULT_HOLD


def _refusal(ref: LimitRef, view: LedgerView, now: datetime, needed: dict[str, float]) -> ApplicationError:
    """The non-retryable error of a refused reservation: the limit's name, and when its window resets."""
    units = [u for u in ("tokens", "usd") if getattr(ref.cap, u) is not None]
    left = view.remaining()
    unit = next((u for u in units if (left[u] or 0) < needed[u]), units[0])
    name = f"{ref.label} {ref.window} {unit}"
    return ApplicationError(
        f"spend limit reached: {name} (cap {getattr(ref.cap, unit)}, spent {getattr(view, 'spent_' + unit)})",
        {
            "limit": name,
            "on_limit": ref.on_limit,
            "resets_at": period_end(ref.window, now).isoformat(),
            "resets_in_seconds": (period_end(ref.window, now) - now).total_seconds(),
            "remaining": left,
        },
        type=SPEND_LIMIT_REACHED,
        non_retryable=True,
    )
