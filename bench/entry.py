"""How a bench's `__main__` ends: its async `main` run to an exit status, Ctrl-C as 130, and the process ended
through the product's `config.cli.exit_now` (output flushed, interpreter teardown skipped: sdk-python#300)."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, NoReturn

from config.cli import INTERRUPTED_EXIT, exit_now


def run_bench(main: Coroutine[Any, Any, int]) -> NoReturn:
    """Run `main`; exit with its status (130 on Ctrl-C)."""
    try:
        code = asyncio.run(main)
    except KeyboardInterrupt:
        code = INTERRUPTED_EXIT
    exit_now(code)
