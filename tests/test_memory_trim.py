"""The worker hands freed memory back to the system (service/memory.py): a process that freed most of a
fragmented heap sees its RSS fall after `malloc_trim`, and the trimming loop stops when cancelled."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from service.memory import malloc_trim, trimming

ROOT = Path(__file__).resolve().parents[1]

FRAGMENTED = """
import sys
from service.memory import malloc_trim

def rss_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])

# 200 MiB in 2 KiB blocks (malloc, not pymalloc), keeping one block in fifty: the heap cannot shrink from its top.
blocks = [bytearray(2048) for _ in range(100_000)]
kept = blocks[::50]
del blocks
before = rss_kib()
released = malloc_trim()()
after = rss_kib()
print(before, after, released)
"""


def test_rss_falls_after_a_burst_is_freed_and_trimmed():
    assert malloc_trim() is not None, "glibc's malloc_trim was not found (this machine runs glibc)"
    done = subprocess.run(
        [sys.executable, "-c", FRAGMENTED], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    before, after, released = map(int, done.stdout.split())
    assert released == 1 and before - after > 100 * 1024, (before, after)  # most of the freed 196 MiB went back


async def test_the_trimming_loop_trims_at_once_and_stops_when_cancelled():
    task = asyncio.create_task(trimming(3600))
    await asyncio.sleep(0.2)  # the first trim, in a thread
    assert not task.done()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert task.cancelled()
    await trimming(0)  # off: returns at once
