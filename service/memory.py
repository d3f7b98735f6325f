"""Giving freed memory back: idle cache entries dropped, then glibc's `malloc_trim(0)`, run by the worker now and then.

CPython frees a burst's objects (fifty runs started at once, a large tool output, a replayed history), but glibc
keeps the freed pages in its heaps unless they sit at a heap's very top, so a worker's resident memory stays at
its high-water mark while its runs wait for days. `malloc_trim(0)` hands every whole free page back (madvise), so
RSS, what an operator and an orchestrator's memory limit see, follows what the worker holds. It walks the heaps
in a few milliseconds (in a thread, off the event loop). Where the C library has no `malloc_trim` (musl, macOS)
this does nothing.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
from collections.abc import Callable
from functools import cache

from payloads.lru import drop_idle_everywhere

log = logging.getLogger(__name__)


@cache
def malloc_trim() -> Callable[[], int] | None:
    """`malloc_trim(0)` of the process's C library (1 when memory was released), or None where it has none."""
    try:
        trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    trim.argtypes = [ctypes.c_size_t]
    trim.restype = ctypes.c_int
    return lambda: int(trim(0))


async def trimming(every_seconds: float) -> None:
    """Release at once, then every `every_seconds`, until cancelled; 0: never. Without `malloc_trim`, only the
    caches' idle entries are dropped."""
    if every_seconds <= 0:
        return
    trim = malloc_trim()
    log.debug("releasing idle cache entries and freed memory every %gs (malloc_trim: %s)", every_seconds, bool(trim))
    while True:
        drop_idle_everywhere()  # caches' entries idle past their bound (a waiting run's conversation), first
        if trim is not None:
            await asyncio.to_thread(trim)
        await asyncio.sleep(every_seconds)
