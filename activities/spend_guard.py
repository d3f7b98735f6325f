"""Reserve before, settle after: the one function every model call of the product goes through (`SpendGuard.call`).

`GuardedProvider` (activities/guarded_provider.py) wraps each `LlmProvider`, so the loop's `call_llm`, the planner,
screening, summaries and the Claude black box are guarded without knowing it; the OpenAI black box reserves
itself and ends its holds by the same rule (`Hold.end`; activities/black_box/openai_model.py), since the Agents
SDK makes its calls through its own client.

A call reserves its estimate (input estimate plus its output allowance, priced by models/pricing.py) from every
limit that applies (models/spend_limits.py), each in its ledger workflow (workflows/spend_ledger.py) reached by
update-with-start. A refused reservation releases the ones already taken and raises `SpendLimitReached` (a
non-retryable ApplicationError naming the limit); the workflow ends the run `budget_exceeded` (or waits).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio import activity
from temporalio.client import Client, WithStartWorkflowOperation, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from models.llm import LlmResponse
from models.pricing import cost_usd
from models.search_attributes import CUSTOMER_ID
from models.spend_limits import (
    LedgerCarry,
    LedgerView,
    LimitRef,
    ReserveRequest,
    SettleRequest,
    SpendLimits,
    SpendNote,
    ledger_id,
    period_end,
    period_of,
    tightest,
)
from telemetry.metrics import activity_meter, record_spend_limit

SPEND_LIMIT_REACHED = "SpendLimitReached"
"""The ApplicationError type of a refused reservation; workflows/calls.py turns it into the run's end."""
SETTLE_PATIENCE = timedelta(minutes=3)
"""How long a settle is sent again before it gives up: as long as a model call's hold lasts (its attempt's timeout)."""
DEFAULT_HOLD = timedelta(minutes=15)
"""How long a hold lasts outside an activity (tools, benches): as long as the longest model-call activity."""
CUSTOMERS_CACHED = 4096


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
        """Hold the call's estimate in every applicable limit's ledger, or raise `SpendLimitReached` naming one."""
        refs = self._limits.applicable(await self._customer())
        key, attempt = self._key()
        hold = Hold(self, refs, clock(), key, attempt, model, (input_tokens, max_output))
        if not refs:
            return hold
        tokens, usd = input_tokens + max_output, cost_usd(model, input_tokens, max_output)
        views = await asyncio.gather(*(self._reserve(ref, hold.at, key, attempt, tokens, usd) for ref in refs))
        refused = [ref for ref, view in zip(refs, views, strict=True) if not view.granted]
        if refused:
            await hold.release()
            view = views[refs.index(refused[0])]
            raise _refusal(refused[0], view, hold.at, {"tokens": tokens, "usd": usd})
        return hold

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

    async def _reserve(
        self, ref: LimitRef, now: datetime, key: str, attempt: int, tokens: int, usd: float
    ) -> LedgerView:
        request = ReserveRequest(
            key=key, attempt=attempt, tokens=tokens, usd=usd, cap=ref.cap, hold_seconds=_hold().total_seconds()
        )
        start: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
            "SpendLedgerWorkflow",
            LedgerCarry(
                scope=ref.scope,
                window=ref.window,
                period=period_of(ref.window, now),
                resets_at=period_end(ref.window, now),
            ),
            id=ledger_id(ref, now),
            task_queue=self._task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=f"spend ledger: {ref.label} {ref.window} {period_of(ref.window, now)}",
        )
        view: LedgerView = await self._client.execute_update_with_start_workflow(
            "reserve", request, start_workflow_operation=start, result_type=LedgerView
        )
        return view

    async def _settle(
        self, refs: list[LimitRef], now: datetime, key: str, attempt: int, tokens: int, usd: float
    ) -> list[LedgerView]:
        settle = SettleRequest(key=key, attempt=attempt, tokens=tokens, usd=usd)

        async def settle_in(ref: LimitRef) -> LedgerView:
            handle = self._client.get_workflow_handle(ledger_id(ref, now))
            return await _until_landed(lambda: handle.execute_update("settle", settle, result_type=LedgerView))

        views: list[LedgerView] = await asyncio.gather(*(settle_in(ref) for ref in refs))
        for ref, view in zip(refs, views, strict=True):
            _gauges(ref, view)
        return views


async def _until_landed(update: Callable[[], Awaitable[LedgerView]]) -> LedgerView:
    """A settle, sent again until its ledger takes it.

    A busy ledger rejects updates beyond the server's in-flight limit, and one whose workflow task timed out
    aborts them; the client's own retries can run out. A settle that never lands loses spend the provider
    billed (the hold is later reclaimed uncounted), so it is retried for as long as a hold lasts. It is safe to
    repeat: the ledger counts each call attempt's settle once.
    """
    delay, deadline = 0.2, time.monotonic() + SETTLE_PATIENCE.total_seconds()
    while True:
        try:
            return await update()
        except (RPCError, WorkflowUpdateRPCTimeoutOrCancelledError) as exc:
            if time.monotonic() + delay > deadline:
                raise
            logging.getLogger(__name__).warning("settle not taken yet (%s); again in %.1f s", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


class Hold:
    """One call's reservations: `settle` its actual spend, or `release` them (a failed call); at most once."""

    def __init__(
        self,
        guard: SpendGuard,
        refs: list[LimitRef],
        at: datetime,
        key: str,
        attempt: int,
        model: str,
        estimate: tuple[int, int],
    ) -> None:
        self._guard, self._refs, self.at, self._key, self._attempt, self._model = guard, refs, at, key, attempt, model
        self._estimate = estimate
        """(input estimate, output allowance): what the hold reserved."""
        self._done = not refs

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
        """Count what the call was billed, once, in every ledger it held in; the tightest limit after it."""
        if self._done:
            return None
        self._done = True
        usd = cost_usd(self._model, input_tokens, output_tokens)
        views = await self._guard._settle(
            self._refs, self.at, self._key, self._attempt, input_tokens + output_tokens, usd
        )
        return tightest(self._refs, views)

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


def _gauges(ref: LimitRef, view: LedgerView) -> None:
    """The worker's Prometheus gauges of this limit, as its ledger just answered (`agent_spend_limit`)."""
    record_spend_limit(
        activity_meter(),
        limit=f"{ref.label} {ref.window}",
        figures={
            "spent": {"tokens": view.spent_tokens, "usd": view.spent_usd},
            "reserved": {"tokens": view.reserved_tokens, "usd": view.reserved_usd},
            "remaining": view.remaining(),
            "cap": {"tokens": ref.cap.tokens, "usd": ref.cap.usd},
        },
    )


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
