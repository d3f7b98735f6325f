"""`python -m tools check-agents FILE`: the worker's start-up checks of an agents file, without Temporal.

TOOL_MODULES (and the rest of the environment) are read as the worker reads them. Exit 0 when the
file is fine, 1 with one line per problem otherwise, 2 and one line on a malformed setting (`--debug`:
with its traceback).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys

from config.cli import DEBUG_HELP, exit_now, run_command
from config.settings import Settings
from models.errors import AgentsFileInvalid
from tools.loader import LoadedTools, load_registry


async def _check(settings: Settings) -> LoadedTools:
    loaded = await load_registry(settings)
    await loaded.close()
    return loaded


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    return run_command("tools", _main, argv)


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools", description=__doc__.splitlines()[0], epilog=DEBUG_HELP)
    commands = parser.add_subparsers(dest="command", required=True)
    check = commands.add_parser("check-agents", help="check an agents file (and TOOL_MODULES, MCP servers)")
    check.add_argument("file")
    args = parser.parse_args(argv)
    try:
        settings = dataclasses.replace(Settings.from_env(), agents_file=args.file)
        loaded = asyncio.run(_check(settings))
    except AgentsFileInvalid as exc:  # the file's problems are this command's answer, not its failure
        for problem in exc.problems:
            print(problem)
        print(f"{len(exc.problems)} problem(s) found", file=sys.stderr)
        return 1
    file_agents = [a for a in loaded.registry.agents.values() if a.source != "built-in"]
    print(f"{args.file}: ok: {len(file_agents)} agent(s)")
    for agent in file_agents:
        print(f"  {agent.name}: {', '.join(agent.tools) or 'no tools'}")
    return 0


if __name__ == "__main__":
    exit_now(main())
