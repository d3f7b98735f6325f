"""A worker's allowance in a spend ledger: the contract between activities/spend_lease.py and the ledger workflow.

A worker takes a block of a limit's cap (its *allowance*, held in the ledger under the worker's lease id) and
admits model calls from it without a round trip. It reports what it admitted and what those calls spent in the
background (`LeaseReport`); the ledger turns each admitted call into an ordinary per-call hold (so a retry on
another worker takes it over, and a dead attempt's hold is reclaimed at its timeout), counts each settle once,
and tops the allowance up while the cap has room. Reports of one lease are sequential and numbered: one applied
twice (a retried RPC) changes nothing the second time.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from models.spend_limits import Lease, LedgerView, SettleRequest, WindowCap

__all__ = ["Lease", "LeaseHold", "LeaseReport", "LeaseView"]

REPORT_ITEMS = 500
"""The most holds (and, apart, settles) one report carries; the rest go in the next."""


class LeaseHold(BaseModel):
    """A call admitted from an allowance: it becomes the ledger's hold of `key` for `hold_seconds`."""

    key: str
    attempt: int = Field(1, ge=1)
    tokens: int = Field(ge=0)
    usd: float = Field(ge=0)
    hold_seconds: float = Field(gt=0)


class LeaseReport(BaseModel):
    """What a worker admitted and settled since its last report, and the allowance it wants to hold on."""

    lease: str = Field(min_length=1, max_length=300)
    seq: int = Field(ge=1)
    holds: list[LeaseHold] = Field(default_factory=list, max_length=REPORT_ITEMS)
    settles: list[SettleRequest] = Field(default_factory=list, max_length=REPORT_ITEMS)
    need_tokens: int = Field(0, ge=0)
    need_usd: float = Field(0.0, ge=0)
    """The least the allowance must grow by for the call waiting on this report (0: none waits)."""
    want_tokens: int = Field(0, ge=0)
    want_usd: float = Field(0.0, ge=0)
    """The allowance the worker would like to hold; it gets less near the cap, and never less than it holds."""
    release: bool = False
    """Give the whole allowance back (the worker is idle or stopping)."""
    cap: WindowCap
    ttl_seconds: float = Field(gt=0, le=3600)
    """How long the allowance lasts without another report."""


class LeaseView(BaseModel):
    """The ledger's answer to a report: whether the need was met, the allowance now, and the ledger's figures."""

    granted: bool
    tokens: int
    usd: float
    ledger: LedgerView
    busy: bool = False
    """Not granted, but the room the need lacks sits in other workers' allowances: ask again shortly."""
    squeeze: bool = False
    """Another worker waits for room: give back what this allowance does not use now."""
