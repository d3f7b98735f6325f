"""`python -m progress follow <workflow-id> [--from-offset N] [--json]`: render a run's progress live."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

from config.settings import Settings
from progress.reader import follow_events
from progress.render import Renderer
from service.connect import connect


async def follow(workflow_id: str, from_offset: int, as_json: bool) -> int:
    """Print the run's events until `run_finished`; 0 when the run finished, 1 when its stream ended without it."""
    client = await connect(Settings.from_env())
    renderer = Renderer(workflow_id, sys.stdout)
    status = None
    async for event in follow_events(client, workflow_id, from_offset):
        if as_json:
            print(json.dumps(event), flush=True)
        else:
            renderer.show(event)
        if event["type"] == "run_finished":
            status = event.get("status")
    return 0 if status is not None else 1


def main(argv: list[str] | None = None) -> int:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m progress", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    follow_cmd = commands.add_parser("follow", help="render a run's progress until it finishes")
    follow_cmd.add_argument("workflow_id")
    follow_cmd.add_argument("--from-offset", type=int, default=0, help="start at this offset (default 0: everything)")
    follow_cmd.add_argument("--json", action="store_true", help="one JSON event per line instead of the rendering")
    args = parser.parse_args(argv)
    try:
        return asyncio.run(follow(args.workflow_id, args.from_offset, args.json))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    os._exit(main())  # sdk-python#300: skip interpreter teardown
