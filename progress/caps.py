"""How many followers one gateway process serves: per run, and per token (its identity)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

FOLLOWERS_PER_RUN = 100
"""Default cap on one run's followers in one process (config: GATEWAY_FOLLOWERS_PER_RUN)."""
FOLLOWERS_PER_TOKEN = 20
"""Default cap on one token's open followers in one process, across runs (config: GATEWAY_FOLLOWERS_PER_TOKEN)."""


@dataclass
class Seat:
    """One admitted follower; `release` (idempotent) frees its place under both caps."""

    caps: FollowerCaps
    workflow_id: str
    identity: str | None
    released: bool = False

    def release(self) -> None:
        """The follower is gone (however its response ended)."""
        if not self.released:
            self.released = True
            self.caps.free(self)


@dataclass
class FollowerCaps:
    """The followers this process serves, counted per run and per identity."""

    per_run: int = FOLLOWERS_PER_RUN
    per_token: int = FOLLOWERS_PER_TOKEN
    by_run: Counter[str] = field(default_factory=Counter)
    by_identity: Counter[str] = field(default_factory=Counter)

    def admit(self, workflow_id: str, identity: str | None) -> Seat | str:
        """A seat for a new follower, or why there is none (the answer is then 429)."""
        if identity is not None and self.by_identity[identity] >= self.per_token:
            return f"{identity} already follows {self.by_identity[identity]} streams here, the most one token may"
        if self.by_run[workflow_id] >= self.per_run:
            return f"run {workflow_id} already has {self.by_run[workflow_id]} followers here, the most one run may"
        self.by_run[workflow_id] += 1
        if identity is not None:
            self.by_identity[identity] += 1
        return Seat(self, workflow_id, identity)

    def free(self, seat: Seat) -> None:
        """Give back `seat`'s places (Counter drops keys at zero only on `+`, so do it by hand)."""
        for counts, key in ((self.by_run, seat.workflow_id), (self.by_identity, seat.identity)):
            if key is None:
                continue
            counts[key] -= 1
            if counts[key] <= 0:
                del counts[key]
