"""`python -m spend`: each spend limit's spend, reservations and remainder, one line each (`--json`: JSON rows).

Configuration as the worker's (TEMPORAL_*, SPEND_LIMITS); a bad setting is one line and exit status 2.
"""

from __future__ import annotations

import argparse
import asyncio
import json

from config.cli import DEBUG_HELP, exit_now, run_command
from config.settings import Settings
from service.connect import connect_reader
from spend.usage import line, usage


def main(argv: list[str] | None = None) -> int:
    """Print the open ledgers; returns the exit code."""
    return run_command("spend", _main, argv)


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m spend", description="Spend, reserved and remainder of each spend limit.", epilog=DEBUG_HELP
    )
    parser.add_argument("--customer", action="append", help="only this customer's limits (repeatable; * for all)")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    rows = asyncio.run(_rows(settings, set(args.customer) if args.customer else None))
    for row in rows:
        print(json.dumps(row) if args.json else line(row))
    if not rows:
        print("no spend recorded in any open window" + ("" if settings.spend_limits else " (SPEND_LIMITS is not set)"))
    return 0


async def _rows(settings: Settings, scopes: set[str] | None) -> list[dict[str, object]]:
    client = await connect_reader(settings)
    return await usage(client, settings.spend_limits, scopes)


if __name__ == "__main__":
    exit_now(main())
