"""Spend limits across runs (`SPEND_LIMITS`): the file's shape, which limits a call meets, and the ledger's contract.

A limit is one (scope, window): scope `*` (the whole deployment) or one customer (named in the file, or under
`default`); window `day` or `month`, UTC calendar periods. A new period is a new ledger (its id names the period),
so a window "resets" at 00:00 UTC (day) or on the 1st (month) without any clean-up.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from temporalio.common import Priority

from models.search_attributes import TENANT_NAME

ALL = "*"
DEFAULT = "default"
NO_CUSTOMER = "-"
"""The customer id of runs started without `customer_id`: they count against `default`."""
WINDOWS = ("day", "month")
LEDGER_PREFIX = "spend-limit"


class WindowCap(BaseModel):
    """`day = { tokens = ..., usd = ... }`: at least one of the two."""

    model_config = ConfigDict(extra="forbid")
    tokens: int | None = Field(None, ge=0)
    usd: float | None = Field(None, ge=0)

    @model_validator(mode="after")
    def _some(self) -> WindowCap:
        if self.tokens is None and self.usd is None:
            raise ValueError("a window needs tokens and/or usd, e.g. { usd = 50.0 }")
        return self


class LimitTable(BaseModel):
    """One `[limits.NAME]` table."""

    model_config = ConfigDict(extra="forbid")
    day: WindowCap | None = None
    month: WindowCap | None = None
    on_limit: Literal["fail", "wait"] = "fail"
    fairness_weight: float = Field(1.0, gt=0, le=1000)
    tenant: str | None = Field(None, pattern=rf"^{TENANT_NAME.pattern}$")
    """The gateway tenant this customer belongs to: another tenant's token may not start runs that spend its limits
    (403), and this tenant's `GET /v1/usage` shows them. Without it, a customer is its tenant's of the same name."""


class SpendLimits(BaseModel):
    """The whole file: `limits` by name (`*`, `default`, or a customer id)."""

    model_config = ConfigDict(extra="forbid")
    limits: dict[str, LimitTable] = Field(default_factory=dict)

    def applicable(self, customer_id: str | None) -> list[LimitRef]:
        """Every (scope, window) cap a call of `customer_id`'s run reserves from: the customer's (or default's), then `*`."""
        customer = customer_id or NO_CUSTOMER
        refs: list[LimitRef] = []
        table = self.table_of(customer_id)
        if table is not None:
            refs += _refs(f"customer {customer}", customer, table)
        if ALL in self.limits:
            refs += _refs("all customers", ALL, self.limits[ALL])
        return refs

    def table_of(self, customer_id: str | None) -> LimitTable | None:
        """The customer's own table, else `default`."""
        customer = customer_id or NO_CUSTOMER
        if customer not in (ALL, DEFAULT) and customer in self.limits:
            return self.limits[customer]
        return self.limits.get(DEFAULT)


class LimitRef(BaseModel):
    """One cap a call meets: who it is for, its window and caps, and what happens when it is reached."""

    label: str
    """`customer C123` or `all customers`: the start of the name a stopped run reports."""
    scope: str
    window: Literal["day", "month"]
    cap: WindowCap
    on_limit: Literal["fail", "wait"] = "fail"


def _refs(label: str, scope: str, table: LimitTable) -> list[LimitRef]:
    return [
        LimitRef(label=label, scope=scope, window=w, cap=cap, on_limit=table.on_limit)
        for w, cap in (("day", table.day), ("month", table.month))
        if cap is not None
    ]


def customer_owner(limits: SpendLimits | None, customer_id: str, tenants: Collection[str]) -> str | None:
    """The gateway tenant `customer_id` belongs to: the one its SPEND_LIMITS table names (`tenant = "..."`), else
    the tenant of the same name when `tenants` has it, else none (a customer open to every tenant)."""
    own = limits.limits.get(customer_id) if limits is not None and customer_id not in (ALL, DEFAULT) else None
    if own is not None and own.tenant is not None:
        return own.tenant
    return customer_id if customer_id in tenants else None


def customers_of(limits: SpendLimits | None, tenant: str) -> set[str]:
    """The customers `tenant` owns (`customer_owner`): whose limits it alone may spend, and sees."""
    named = {name for name, table in limits.limits.items() if table.tenant == tenant} if limits is not None else set()
    return {c for c in {tenant} | named if customer_owner(limits, c, {tenant}) == tenant}


def fairness(limits: SpendLimits | None, customer_id: object) -> Priority:
    """The `Priority` a run starts with: fairness key = its customer (`-` without one), weight from the file.

    Its activities inherit it, so both workflow and activity tasks are dispatched fairly between customers.
    """
    key = fairness_key(customer_id)
    table = limits.table_of(customer_id if isinstance(customer_id, str) else None) if limits is not None else None
    return Priority(fairness_key=key, fairness_weight=table.fairness_weight if table else 1.0)


def fairness_key(customer_id: object) -> str:
    """A customer's fairness key: its id (`-` without one), cut to the 64 bytes the server takes."""
    customer = customer_id if isinstance(customer_id, str) and customer_id else NO_CUSTOMER
    return customer.encode()[:64].decode(errors="ignore")


def period_of(window: str, now: datetime) -> str:
    """The UTC calendar period `now` falls in: `2026-12-07` (day) or `2026-12` (month)."""
    return now.strftime("%Y-%m-%d" if window == "day" else "%Y-%m")


def period_end(window: str, now: datetime) -> datetime:
    """When the period `now` falls in ends (its window resets), UTC."""
    start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if window == "day":
        return start + timedelta(days=1)
    first = start.replace(day=1)
    return (first + timedelta(days=32)).replace(day=1)


def ledger_id(ref: LimitRef, now: datetime) -> str:
    """The workflow id of `ref`'s ledger for the period `now` falls in."""
    return f"{LEDGER_PREFIX}/{ref.scope}/{ref.window}/{period_of(ref.window, now)}"


class Reservation(BaseModel):
    """What one model call holds until it settles, or until `expires_at` (its attempt's timeout) reclaims it."""

    attempt: int
    tokens: int
    usd: float
    expires_at: datetime


class Lease(BaseModel):
    """A worker's allowance in a ledger (models/spend_lease.py): what it holds now, and until when (a worker that
    stops reporting has lost it)."""

    tokens: int = 0
    usd: float = 0.0
    seq: int = 0
    """The last report applied."""
    expires_at: datetime


class ReserveRequest(BaseModel):
    """Hold `tokens`/`usd` for call `key` (one per model call of a run; every attempt of it shares the key)."""

    key: str
    attempt: int = Field(1, ge=1)
    tokens: int = Field(ge=0)
    usd: float = Field(ge=0)
    cap: WindowCap
    hold_seconds: float = Field(gt=0)
    """The attempt's timeout: a reservation not settled by then is reclaimed (its attempt died)."""


class SettleRequest(BaseModel):
    """Call `key`'s attempt `attempt` spent this much: counted once, its reservation released."""

    key: str
    attempt: int = Field(1, ge=1)
    tokens: int = Field(ge=0)
    usd: float = Field(ge=0)


class LedgerView(BaseModel):
    """A ledger's figures (the answer to reserve and settle, and its `state` query)."""

    granted: bool = True
    spent_tokens: int = 0
    spent_usd: float = 0.0
    reserved_tokens: int = 0
    reserved_usd: float = 0.0
    cap: WindowCap | None = None
    reservations: int = 0
    reclaimed: int = 0
    resets_at: datetime | None = None
    leased_tokens: int = 0
    leased_usd: float = 0.0
    """What workers' allowances hold, not yet given to a call (models/spend_lease.py)."""

    def held(self) -> dict[str, float]:
        """What is held away from the cap: the calls in flight, and what workers' allowances may still admit."""
        return {
            "tokens": self.reserved_tokens + self.leased_tokens,
            "usd": round(self.reserved_usd + self.leased_usd, 8),
        }

    def remaining(self) -> dict[str, float | None]:
        """What is left of each cap after spend and what is held (None: that unit is not capped)."""
        cap = self.cap or WindowCap(usd=None, tokens=0)
        held = self.held()
        tokens = None if cap.tokens is None else max(0, int(cap.tokens - self.spent_tokens - held["tokens"]))
        usd = None if cap.usd is None else max(0.0, round(cap.usd - self.spent_usd - held["usd"], 8))
        return {"tokens": tokens, "usd": usd}


class SpendNote(BaseModel):
    """The run's tightest spend limit as of its last model call, for its `status` query."""

    limit: str
    """`customer C123 day`."""
    remaining: dict[str, float | None]
    waiting_until: datetime | None = None
    """Set while the run waits for the window to reset (`on_limit = "wait"`)."""


def tightest(refs: list[LimitRef], views: list[LedgerView]) -> SpendNote | None:
    """The limit with the smallest share of its cap left, and what is left of it."""
    best: tuple[float, SpendNote] | None = None
    for ref, view in zip(refs, views, strict=True):
        left = view.remaining()
        for unit in ("tokens", "usd"):
            cap, rest = getattr(ref.cap, unit), left[unit]
            if cap is None or rest is None:
                continue
            share = rest / cap if cap else 0.0
            if best is None or share < best[0]:
                best = (share, SpendNote(limit=f"{ref.label} {ref.window}", remaining=left))
    return best[1] if best else None


class LedgerCarry(BaseModel):
    """What one generation of a ledger hands to the next (continue-as-new)."""

    scope: str
    window: str
    period: str
    resets_at: datetime
    spent_tokens: int = 0
    spent_usd: float = 0.0
    reclaimed: int = 0
    cap: WindowCap | None = None
    reservations: dict[str, Reservation] = Field(default_factory=dict)
    leases: dict[str, Lease] = Field(default_factory=dict)
    """Workers' allowances by lease id."""
    squeeze_until: datetime | None = None
    """Until then a worker waits for room parked in others' allowances: they get no more than they need."""
    settled: dict[str, datetime] = Field(default_factory=dict)
    """`key#attempt` -> when: a settle or reserve of an attempt already settled changes nothing."""
