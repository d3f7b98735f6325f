"""`python -m progress follow <workflow-id> [--from-offset N] [--json] [--debug]`: render a run's progress live."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from temporalio.service import RPCError, RPCStatusCode

from config.cli import DEBUG_HELP, exit_now, rpc_problem, run_command
from config.settings import Settings
from progress.reader import follow_events
from progress.render import Renderer
from service.connect import connect_reader


async def follow(workflow_id: str, from_offset: int, as_json: bool) -> int:
    """Print the run's events until `run_finished`; 0 when the run finished, 1 when its stream ended without it
    or there is no such run."""
    client = await connect_reader(Settings.from_env())
    renderer = Renderer(workflow_id, sys.stdout)
    status = None
    try:
        async for event in follow_events(client, workflow_id, from_offset):
            if as_json:
                print(json.dumps(event), flush=True)
            else:
                renderer.show(event)
            if event["type"] == "run_finished":
                status = event.get("status")
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND or rpc_problem(exc) is not None:
            raise  # a setting's fault (namespace, credentials): config/cli.py says which
        print(f"progress: {exc.message} (namespace {client.namespace!r})", file=sys.stderr)
        return 1
    return 0 if status is not None else 1


def main(argv: list[str] | None = None) -> int:
    """The command line; a configuration or connection error is one line and exit status 2 (config/cli.py)."""
    return run_command("progress", _main, argv)


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m progress", description=__doc__, epilog=DEBUG_HELP)
    commands = parser.add_subparsers(dest="command", required=True)
    follow_cmd = commands.add_parser("follow", help="render a run's progress until it finishes")
    follow_cmd.add_argument("workflow_id")
    follow_cmd.add_argument("--from-offset", type=int, default=0, help="start at this offset (default 0: everything)")
    follow_cmd.add_argument("--json", action="store_true", help="one JSON event per line instead of the rendering")
    args = parser.parse_args(argv)
    return asyncio.run(follow(args.workflow_id, args.from_offset, args.json))


if __name__ == "__main__":
    exit_now(main())
