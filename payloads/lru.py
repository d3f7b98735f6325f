"""A small thread-safe LRU map for content-addressed data, which never goes stale; bounded by entries or by bytes,
and optionally by idleness: entries not used for `idle_seconds` are dropped (`drop_idle`, `drop_idle_everywhere`)."""

from __future__ import annotations

import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

_EXPIRING: weakref.WeakSet[Lru] = weakref.WeakSet()  # type: ignore[type-arg]
"""Every live map with an idle bound, for `drop_idle_everywhere`."""


class Lru(Generic[K, V]):
    """Keeps the most recently used values whose total `weight` (1 each by default) stays within `capacity`.

    Thread-safe: activities use it from the event loop and from `asyncio.to_thread` workers, and the codec
    server from its request threads. A single value heavier than `capacity` is not kept. With `idle_seconds`,
    a value not used for that long is dropped at the next access or `drop_idle` call, whatever room is left.
    """

    def __init__(
        self, capacity: int, weight: Callable[[V], int] = lambda _: 1, idle_seconds: float | None = None
    ) -> None:
        self._items: OrderedDict[K, tuple[V, float]] = OrderedDict()
        self._capacity = capacity
        self._weight = weight
        self._idle = idle_seconds
        self._total = 0
        self._lock = threading.Lock()
        if idle_seconds is not None:
            _EXPIRING.add(self)

    def get(self, key: K) -> V | None:
        """The value under `key`, now the most recently used; None when absent."""
        with self._lock:
            now = time.monotonic()
            self._drop_idle(now)
            entry = self._items.get(key)
            if entry is None:
                return None
            self._items[key] = (entry[0], now)
            self._items.move_to_end(key)
            return entry[0]

    def put(self, key: K, value: V) -> None:
        """Keep `value`, evicting the least recently used until the total weight fits."""
        weight = self._weight(value)
        if weight > self._capacity:
            return
        with self._lock:
            now = time.monotonic()
            self._drop_idle(now)
            if key in self._items:
                self._total -= self._weight(self._items.pop(key)[0])
            self._items[key] = (value, now)
            self._total += weight
            while self._total > self._capacity:
                _, (old, _used) = self._items.popitem(last=False)
                self._total -= self._weight(old)

    def drop_idle(self) -> None:
        """Drop the values not used for `idle_seconds` (nothing without that bound)."""
        with self._lock:
            self._drop_idle(time.monotonic())

    def __len__(self) -> int:
        return len(self._items)

    def _drop_idle(self, now: float) -> None:
        if self._idle is None:
            return
        while self._items:
            key, (value, used) = next(iter(self._items.items()))
            if now - used < self._idle:
                return  # in recency order: the rest are newer
            del self._items[key]
            self._total -= self._weight(value)


def drop_idle_everywhere() -> None:
    """`drop_idle` on every live map that has an idle bound (the worker's periodic memory release calls it)."""
    for lru in list(_EXPIRING):
        lru.drop_idle()
