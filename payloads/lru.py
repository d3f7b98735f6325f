"""A small thread-safe LRU map for content-addressed data, which never goes stale; bounded by entries or by bytes."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Lru(Generic[K, V]):
    """Keeps the most recently used values whose total `weight` (1 each by default) stays within `capacity`.

    Thread-safe: activities use it from the event loop and from `asyncio.to_thread` workers, and the codec
    server from its request threads. A single value heavier than `capacity` is not kept.
    """

    def __init__(self, capacity: int, weight: Callable[[V], int] = lambda _: 1) -> None:
        self._items: OrderedDict[K, V] = OrderedDict()
        self._capacity = capacity
        self._weight = weight
        self._total = 0
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        """The value under `key`, now the most recently used; None when absent."""
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> None:
        """Keep `value`, evicting the least recently used until the total weight fits."""
        weight = self._weight(value)
        if weight > self._capacity:
            return
        with self._lock:
            if key in self._items:
                self._total -= self._weight(self._items.pop(key))
            self._items[key] = value
            self._total += weight
            while self._total > self._capacity:
                _, old = self._items.popitem(last=False)
                self._total -= self._weight(old)
