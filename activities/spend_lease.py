"""A worker's allowance in one spend ledger: model calls admitted without a round trip.

Reserving each call in its ledger costs an update round trip before the call and another after it (36-43 ms on a
dev server). Instead each worker holds an *allowance* in each ledger it uses (a block of the cap, under its lease
id: models/spend_lease.py) and admits calls from it at once. What it admitted and what those calls spent are
reported in the background, coalesced, one report in flight per ledger; each report also tops the allowance up.

Exactness is kept where it matters:
- A call is admitted only from an allowance the ledger already counts against the cap, so total spend stays within
  the cap plus the estimate error of the calls in flight, as before.
- The ledger turns every admitted call into an ordinary hold keyed by the call: a retry (on any worker) takes it
  over and is counted once; a dead attempt's hold is reclaimed at its attempt's timeout.
- An allowance not reported on for `LEASE_TTL` lapses (its worker died); the worker itself stops using one well
  before (`TRUST`), so the two never disagree. An idle worker gives its allowance back after `IDLE_SECONDS`, and a
  stopping one at once (`release_all`).

What the round trip bought and the allowance gives up: a worker killed in the few milliseconds between admitting a
call (or settling it) and reporting it loses that report. The call's hold is then unknown to the ledger, as a dead
attempt's hold reclaimed uncounted always was (documented in docs/spend-limits.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio.client import Client, WithStartWorkflowOperation, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError

from models.spend_lease import REPORT_ITEMS, LeaseHold, LeaseReport, LeaseView
from models.spend_limits import LedgerCarry, LedgerView, LimitRef, SettleRequest, ledger_id, period_end, period_of
from telemetry.metrics import activity_meter, record_spend_limit

LEASE_TTL = timedelta(seconds=30)
"""How long an allowance lasts in the ledger after the worker's last report."""
TRUST = 0.5
"""The share of LEASE_TTL after a report's sending for which the worker admits calls from what it answered."""
IDLE_SECONDS = 2.0
"""An allowance no call has drawn on for this long is given back, so other workers can use it."""
CALLS_AHEAD = 4
"""An allowance asks for this many calls' estimate at least, more when calls come faster than reports."""
MOST_AHEAD = 64
BUSY_RETRY_SECONDS = 0.25
"""How soon a call asks again when the room it needs sits in other workers' allowances (they give it back)."""
REPORT_PATIENCE = timedelta(minutes=3)
"""How long one report is sent again before its waiters are failed (it is kept and sent again later)."""

_ALL: weakref.WeakSet[Allowance] = weakref.WeakSet()


class Allowance:
    """This worker's allowance in the ledger of `ref` for the period of `at` (see the module docstring)."""

    def __init__(self, client: Client, ref: LimitRef, at: datetime, lease: str, task_queue: str) -> None:
        self.ref, self.ledger = ref, ledger_id(ref, at)
        self._client, self._lease, self._task_queue = client, lease, task_queue
        self._carry = LedgerCarry(
            scope=ref.scope, window=ref.window, period=period_of(ref.window, at), resets_at=period_end(ref.window, at)
        )
        self._free = (0, 0.0)
        self._since = (0, 0.0)
        """Admitted since the report in flight was sent: the answer's allowance does not know of them yet."""
        self._trusted_until = 0.0
        self._holds: list[LeaseHold] = []
        self._settles: list[SettleRequest] = []
        self._unanswered: LeaseReport | None = None
        self._waiting: list[asyncio.Future[LeaseView]] = []
        self._biggest = (0, 0.0)
        """The biggest waiting call: the report must get what it lacks (or it is refused), reckoned when it is sent."""
        self._asked = (0, 0.0)
        """What all the waiting calls need together: the report asks for it on top of the usual allowance."""
        self._want = (0, 0.0)
        self._admitted = 0
        self._last_admit = time.monotonic()
        self._seq = 0
        self._pump: asyncio.Task[None] | None = None
        self._give_back = False
        self._wake = asyncio.Event()
        self.view: LedgerView | None = None
        _ALL.add(self)

    def fits(self, tokens: int, usd: float) -> bool:
        """Whether a call of this estimate can be admitted now, with no round trip."""
        if time.monotonic() >= self._trusted_until:
            return False
        return tokens <= self._free[0] and usd <= self._free[1] + 1e-9

    async def ensure(self, tokens: int, usd: float) -> LeaseView | None:
        """Wait until a call of this estimate fits; the ledger's refusal when it cannot (None: it fits)."""
        while not self.fits(tokens, usd):
            self._biggest = (max(self._biggest[0], tokens), max(self._biggest[1], usd))
            self._want = (max(self._want[0], tokens), max(self._want[1], usd))
            self._asked = (self._asked[0] + tokens, round(self._asked[1] + usd, 8))
            waiter: asyncio.Future[LeaseView] = asyncio.get_running_loop().create_future()
            self._waiting.append(waiter)
            self._kick()
            answer = await waiter
            if answer.busy:  # the room is in other workers' allowances, which they are giving back
                await asyncio.sleep(BUSY_RETRY_SECONDS)
            elif not answer.granted:
                return answer
        return None

    def take(self, hold: LeaseHold) -> None:
        """Admit a call that `fits`: its estimate leaves the allowance, and the next report makes it a hold."""
        self._free = (self._free[0] - hold.tokens, round(self._free[1] - hold.usd, 8))
        self._since = (self._since[0] + hold.tokens, round(self._since[1] + hold.usd, 8))
        self._want = (max(self._want[0], hold.tokens), max(self._want[1], hold.usd))
        self._holds.append(hold)
        self._admitted += 1
        self._last_admit = time.monotonic()
        self._kick()

    def settle(self, settle: SettleRequest) -> None:
        """Count a call's spend (and end its hold) with the next report."""
        self._settles.append(settle)
        self._kick()

    async def release(self) -> None:
        """Report everything and give the allowance back (the worker stops)."""
        self._give_back = True
        self._kick()
        pump = self._pump
        if pump is not None:
            await asyncio.shield(pump)

    def _kick(self) -> None:
        self._wake.set()
        if self._pump is None or self._pump.done():
            self._pump = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        """Report while there is anything to report; give the allowance back once idle; end when nothing is held."""
        while True:
            if self._unanswered or self._holds or self._settles or self._waiting:
                await self._report(release=False)
                continue
            idle_for = time.monotonic() - self._last_admit
            if self._free == (0, 0.0) and self._trusted_until == 0.0:
                self._give_back = False
                return
            if idle_for >= IDLE_SECONDS or self._give_back:
                self._give_back = False
                await self._report(release=True)
                continue
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=IDLE_SECONDS - idle_for)
            except TimeoutError:
                pass

    async def _report(self, *, release: bool) -> None:
        report = self._unanswered or self._next_report(release)
        self._unanswered = report
        waiting, self._waiting = self._waiting, []
        sent = time.monotonic()
        try:
            answer = await until_landed(lambda: self._send(report), REPORT_PATIENCE)
        except Exception as exc:  # kept in _unanswered, sent again on the next kick; its waiters fail now
            logging.getLogger(__name__).warning(
                "spend ledger %s: report %d not taken: %s", self.ledger, report.seq, exc
            )
            for waiter in waiting:
                if not waiter.done():
                    waiter.set_exception(exc)
            await asyncio.sleep(1.0)
            return
        self._unanswered = None
        self.view = answer.ledger
        record_gauges(self.ref, answer.ledger)
        self._free = (answer.tokens - self._since[0], round(answer.usd - self._since[1], 8))
        self._trusted_until = 0.0 if release else sent + LEASE_TTL.total_seconds() * TRUST
        if waiting:  # asked for because calls are waiting: not idle
            self._last_admit = time.monotonic()
        if answer.squeeze and not release and not waiting:  # another worker waits for room: give back what is idle
            self._give_back = True
        for waiter in waiting:
            if not waiter.done():
                waiter.set_result(answer)

    def _next_report(self, release: bool) -> LeaseReport:
        holds, self._holds = self._holds[:REPORT_ITEMS], self._holds[REPORT_ITEMS:]
        settles, self._settles = self._settles[:REPORT_ITEMS], self._settles[REPORT_ITEMS:]
        ahead = min(MOST_AHEAD, max(CALLS_AHEAD, 2 * self._admitted))
        free = self._free if time.monotonic() < self._trusted_until else (0, 0.0)
        biggest, asked, self._biggest, self._asked, self._admitted = self._biggest, self._asked, (0, 0.0), (0, 0.0), 0
        need = (
            (max(biggest[0] - free[0], 0), max(round(biggest[1] - free[1], 8), 0.0))
            if biggest != (0, 0.0)
            else (0, 0.0)
        )
        if release:  # nothing is admitted from an allowance being given back
            self._free, self._trusted_until = (0, 0.0), 0.0
        self._since = (0, 0.0)
        self._seq += 1
        return LeaseReport(
            lease=self._lease,
            seq=self._seq,
            holds=holds,
            settles=settles,
            need_tokens=need[0],
            need_usd=need[1],
            want_tokens=0 if release else self._want[0] * ahead + asked[0],
            want_usd=0.0 if release else round(self._want[1] * ahead + asked[1], 8),
            release=release,
            cap=self.ref.cap,
            ttl_seconds=LEASE_TTL.total_seconds(),
        )

    async def _send(self, report: LeaseReport) -> LeaseView:
        start: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
            "SpendLedgerWorkflow",
            self._carry,
            id=self.ledger,
            task_queue=self._task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            static_summary=f"spend ledger: {self.ref.label} {self.ref.window} {self._carry.period}",
        )
        answer: LeaseView = await self._client.execute_update_with_start_workflow(
            "lease", report, start_workflow_operation=start, result_type=LeaseView
        )
        return answer


RELEASE_PATIENCE = timedelta(seconds=15)
"""How long a stopping worker waits for its last reports; past it, what was not reported is lost as in a crash."""


async def release_all() -> None:
    """Report and give back every allowance of this process (a stopping worker), so no other waits for them to lapse."""
    try:
        async with asyncio.timeout(RELEASE_PATIENCE.total_seconds()):
            await asyncio.gather(*(a.release() for a in list(_ALL)), return_exceptions=True)
    except TimeoutError:
        logging.getLogger(__name__).warning("spend ledgers did not take the last reports in time; they lapse instead")


async def until_landed(update: Callable[[], Awaitable[Any]], patience: timedelta) -> Any:
    """An update to a ledger, sent again until the ledger takes it (or `patience` runs out).

    A busy ledger rejects updates beyond the server's in-flight limit, and one whose workflow task timed out
    aborts them; the client's own retries can run out. Safe to repeat: a report applied already changes nothing.
    """
    delay, deadline = 0.2, time.monotonic() + patience.total_seconds()
    while True:
        try:
            return await update()
        except (RPCError, WorkflowUpdateRPCTimeoutOrCancelledError) as exc:
            if time.monotonic() + delay > deadline:
                raise
            logging.getLogger(__name__).warning("ledger update not taken yet (%s); again in %.1f s", exc, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def record_gauges(ref: LimitRef, view: LedgerView) -> None:
    """The worker's Prometheus gauges of this limit, as its ledger just answered (`agent_spend_limit`)."""
    record_spend_limit(
        activity_meter(),
        limit=f"{ref.label} {ref.window}",
        figures={
            "spent": {"tokens": view.spent_tokens, "usd": view.spent_usd},
            "reserved": view.held(),
            "remaining": view.remaining(),
            "cap": {"tokens": ref.cap.tokens, "usd": ref.cap.usd},
        },
    )
