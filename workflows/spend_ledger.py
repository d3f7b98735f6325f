"""`SpendLedgerWorkflow`: the durable, exact ledger of one spend limit for one window period.

One workflow per (scope, window, period), id `spend-limit/<scope>/<window>/<period>` (models/spend_limits.py),
reached by update-with-start from the activity about to call a model (activities/spend_guard.py). Its update
handlers are synchronous, so Temporal applies them one at a time: no two calls can both take the last of a cap.

- `reserve` holds a call's estimate, keyed by the call; a retried attempt replaces its predecessor's hold, never
  adds to it; an attempt that already settled changes nothing.
- `settle` counts the attempt's actual spend once and releases its hold.
- `lease` is what workers use (activities/spend_lease.py): a worker holds an allowance here and admits calls from
  it without a round trip; its reports turn the calls it admitted into holds (as `reserve` makes them) and count
  their settles. An allowance whose worker stops reporting lapses at its expiry.
- A hold whose attempt never settles (its worker died) is reclaimed when its attempt's timeout passes: a timer.
- The ledger continues as new when its history grows, and ends two days after its period (late settles land).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow

from workflows import versioning

with workflow.unsafe.imports_passed_through():
    from models.spend_lease import LeaseReport, LeaseView
    from models.spend_limits import (
        Lease,
        LedgerCarry,
        LedgerView,
        Reservation,
        ReserveRequest,
        SettleRequest,
        WindowCap,
    )

MAX_EVENTS = 4000
"""Continue as new after this many history events (the server's suggestion comes far later, at 4 MB or 10k+)."""
LINGER = timedelta(days=2)
"""A ledger stays this long after its period, so settles of calls made at its end still count in it."""
SQUEEZE = timedelta(seconds=10)
"""After a worker was told the room it needs is in others' allowances, how long allowances grow by need only."""
SETTLED_KEPT = timedelta(days=2)
"""Settled keys are remembered this long: longer than any attempt of one model call may be retried."""


@workflow.defn(name="SpendLedgerWorkflow")
class SpendLedgerWorkflow:
    """One limit's spend and holds for one window period (see module docstring)."""

    @workflow.init
    def __init__(self, carry: LedgerCarry) -> None:
        # Set here, not in `run`: with update-with-start the first `reserve` may run before `run` starts.
        self._s: LedgerCarry | None = carry
        self._timer_at: datetime | None = None

    @workflow.run
    async def run(self, carry: LedgerCarry) -> LedgerView:
        """Reclaim expired holds until the period is over and nothing is held; continue as new when history grows."""
        s = self._state()
        while True:
            self._reclaim()
            now = workflow.now()
            if not s.reservations and not s.leases and now >= s.resets_at + LINGER:
                await workflow.wait_condition(workflow.all_handlers_finished)
                return self._view()
            if self._should_continue():
                await workflow.wait_condition(workflow.all_handlers_finished)
                self._prune(now)
                workflow.continue_as_new(s)
            self._timer_at = min(self._expiries() + [s.resets_at + LINGER])
            timeout = max((self._timer_at - now).total_seconds(), 0.001)
            try:
                await workflow.wait_condition(self._wake, timeout=timeout)
            except TimeoutError:
                pass

    def _wake(self) -> bool:
        """An earlier expiry than the timer's, or history to cut, needs the loop; other updates do not."""
        assert self._s is not None
        earliest = min(self._expiries(), default=None)
        early = earliest is not None and self._timer_at is not None and earliest < self._timer_at
        return early or self._should_continue()

    def _should_continue(self) -> bool:
        info = workflow.info()
        return info.is_continue_as_new_suggested() or info.get_current_history_length() > MAX_EVENTS

    def _reclaim(self) -> None:
        """Drop holds whose attempt's timeout has passed: that attempt died, or its settle never arrived."""
        assert self._s is not None
        now = workflow.now()
        for key in [k for k, r in self._s.reservations.items() if r.expires_at <= now]:
            del self._s.reservations[key]
            self._s.reclaimed += 1
        for lease in [k for k, a in self._s.leases.items() if a.expires_at <= now]:
            del self._s.leases[lease]  # its worker stopped reporting: the calls it admitted were reported as holds

    def _expiries(self) -> list[datetime]:
        assert self._s is not None
        return [r.expires_at for r in self._s.reservations.values()] + [a.expires_at for a in self._s.leases.values()]

    def _prune(self, now: datetime) -> None:
        assert self._s is not None
        self._s.settled = {k: at for k, at in self._s.settled.items() if now - at < SETTLED_KEPT}

    @workflow.update
    def reserve(self, request: ReserveRequest) -> LedgerView:
        """Hold the call's estimate if it fits under the cap with everything spent and held; `granted` says."""
        s = self._state()
        s.cap = request.cap
        if f"{request.key}#{request.attempt}" in s.settled:
            return self._view()
        others = {k: r for k, r in s.reservations.items() if k != request.key}
        leased = self._leased()
        held_tokens = sum(r.tokens for r in others.values()) + leased[0]
        held_usd = sum(r.usd for r in others.values()) + leased[1]
        if not _fits(request.cap, s.spent_tokens + held_tokens + request.tokens, s.spent_usd + held_usd + request.usd):
            return self._view(granted=False)
        self._hold(request.key, request.attempt, request.tokens, request.usd, request.hold_seconds)
        return self._view()

    @workflow.update
    def settle(self, request: SettleRequest) -> LedgerView:
        """Count one attempt's actual spend once and release the call's hold (if this attempt or an earlier one held it)."""
        self._settle(request)
        return self._view()

    @workflow.update
    def lease(self, report: LeaseReport) -> LeaseView:
        """A worker's report (models/spend_lease.py): the calls it admitted from its allowance become holds, their
        settles count, and the allowance grows by at least `need` (or not at all: `granted` false) toward `want`."""
        s = self._state()
        s.cap = report.cap
        mine = s.leases.get(report.lease)
        if mine is not None and report.seq <= mine.seq:  # applied already: this is the RPC again
            return LeaseView(granted=True, tokens=mine.tokens, usd=mine.usd, ledger=self._view())
        mine = mine or Lease(expires_at=workflow.now())
        s.leases.pop(report.lease, None)  # while it changes, the rest of the ledger is measured without it
        for h in report.holds:
            mine.tokens, mine.usd = max(0, mine.tokens - h.tokens), max(0.0, round(mine.usd - h.usd, 8))
            if f"{h.key}#{h.attempt}" not in s.settled:
                held = s.reservations.get(h.key)
                if held is None or held.attempt <= h.attempt:
                    self._hold(h.key, h.attempt, h.tokens, h.usd, h.hold_seconds)
        for settle in report.settles:
            self._settle(settle)
        granted, busy = True, False
        squeezing = s.squeeze_until is not None and workflow.now() < s.squeeze_until
        if report.release:
            mine.tokens, mine.usd = 0, 0.0
        else:
            room = self._room(report.cap)  # without this allowance, which still holds what it holds
            room = (room[0] - mine.tokens, room[1] - mine.usd)
            granted = _top_up(mine, report, room, generous=not squeezing)
            if not granted:  # a refusal only when no other worker's allowance, given back, would make the room
                parked = self._leased()  # the other workers' (this one's is out of the map meanwhile)
                needs = (report.need_tokens, report.need_usd)
                busy = all(n <= left + p for n, left, p in zip(needs, room, parked, strict=True))
                if busy:
                    s.squeeze_until = workflow.now() + SQUEEZE
        mine.seq, mine.expires_at = report.seq, workflow.now() + timedelta(seconds=report.ttl_seconds)
        if mine.tokens or mine.usd:
            s.leases[report.lease] = mine
        view = self._view(granted=granted)
        return LeaseView(granted=granted, tokens=mine.tokens, usd=mine.usd, ledger=view, busy=busy, squeeze=squeezing)

    def _hold(self, key: str, attempt: int, tokens: int, usd: float, hold_seconds: float) -> None:
        """Call `key`'s hold, replacing an earlier attempt's; it is reclaimed after `hold_seconds` unless settled."""
        expires = workflow.now() + timedelta(seconds=hold_seconds)
        self._state().reservations[key] = Reservation(attempt=attempt, tokens=tokens, usd=usd, expires_at=expires)

    def _settle(self, request: SettleRequest) -> None:
        s = self._state()
        done = f"{request.key}#{request.attempt}"
        if done in s.settled:
            return
        s.settled[done] = workflow.now()
        s.spent_tokens += request.tokens
        s.spent_usd = round(s.spent_usd + request.usd, 8)
        held = s.reservations.get(request.key)
        if held is not None and held.attempt <= request.attempt:
            del s.reservations[request.key]

    def _leased(self) -> tuple[int, float]:
        """What the allowances in the map hold, tokens and usd."""
        leases = self._state().leases.values()
        return sum(a.tokens for a in leases), sum(a.usd for a in leases)

    def _room(self, cap: WindowCap) -> tuple[float, float]:
        """What the cap has left after spend, holds and allowances (infinite in a unit it does not cap)."""
        s = self._state()
        leased = self._leased()
        tokens = s.spent_tokens + sum(r.tokens for r in s.reservations.values()) + leased[0]
        usd = s.spent_usd + sum(r.usd for r in s.reservations.values()) + leased[1]
        return (
            float("inf") if cap.tokens is None else cap.tokens - tokens,
            float("inf") if cap.usd is None else cap.usd - usd + 1e-9,
        )

    @workflow.query
    def state(self) -> LedgerView:
        """Spend, holds and cap of this period."""
        return self._view()

    def _state(self) -> LedgerCarry:
        assert self._s is not None, "the run method sets the state before any handler runs"
        return self._s

    def _view(self, granted: bool = True) -> LedgerView:
        s = self._state()
        leased = self._leased()
        return LedgerView(
            granted=granted,
            spent_tokens=s.spent_tokens,
            spent_usd=s.spent_usd,
            reserved_tokens=sum(r.tokens for r in s.reservations.values()),
            reserved_usd=round(sum(r.usd for r in s.reservations.values()), 8),
            cap=s.cap,
            reservations=len(s.reservations),
            leased_tokens=leased[0],
            leased_usd=round(leased[1], 8),
            reclaimed=s.reclaimed,
            resets_at=s.resets_at,
        )


def _top_up(mine: Lease, report: LeaseReport, room: tuple[float, float], *, generous: bool) -> bool:
    """Grow `mine` by at least the report's need, if the room has it, and (`generous`) toward its want by at most
    half the rest of the room, so one worker's allowance never takes what another's next call needs; False: the
    need does not fit."""
    needs = (report.need_tokens, report.need_usd)
    if any(need > left for need, left in zip(needs, room, strict=True)):
        return False
    grown = []
    for need, want, have, left in zip(needs, (report.want_tokens, report.want_usd), (mine.tokens, mine.usd), room):
        grown.append(max(need, min(max(want - have, 0), (left - need) / 2)) if generous else need)
    mine.tokens += int(grown[0])
    mine.usd = round(mine.usd + grown[1], 8)
    return True


def _fits(cap: WindowCap, tokens: int, usd: float) -> bool:
    """Whether totals of `tokens` and `usd` stay within every unit `cap` sets."""
    return (cap.tokens is None or tokens <= cap.tokens) and (cap.usd is None or usd <= cap.usd + 1e-9)


@workflow.defn(name="SpendLedgerWorkflow", versioning_behavior=versioning.SPEND_LEDGER)
class VersionedSpendLedgerWorkflow(SpendLedgerWorkflow):
    """The ledger on a worker of a Worker Deployment: it lives for a whole window, so it moves to each new version
    (its state is all in its carry, and it continues as new often)."""

    @workflow.init
    def __init__(self, carry: LedgerCarry) -> None:
        super().__init__(carry)

    @workflow.run
    async def run(self, carry: LedgerCarry) -> LedgerView:
        """SpendLedgerWorkflow.run."""
        return await super().run(carry)
