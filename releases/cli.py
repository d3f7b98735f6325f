"""Releasing new worker code (docs/deployments.md):

python -m releases gate [--closed N] [--type T] [--query Q]   # replay the cluster's runs against this checkout
python -m releases gate --histories tests/histories           # replay checked-in histories (no cluster)
python -m releases patches [--query Q]                        # which patches' old branches can go now
python -m releases rollout --build-id B [--ramp 10,50] [--pause-seconds 300]   # ramp, make current, drain

Exit status: 0 all good, 1 the gate found runs that would break (or a rollout step was refused), 2 a configuration
or connection error, in one line (config/cli.py).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Sequence
from pathlib import Path

from temporalio.worker import Replayer

from config.cli import DEBUG_HELP, run_command
from config.settings import Settings
from models.errors import ConfigError
from releases.gate import Candidate, breakages, cluster_candidates, file_candidates, product_replayer
from releases.patch_report import patch_report
from releases.rollout import Rollout
from service.connect import connect

DEFAULT_CLOSED = 20


def main(argv: list[str] | None = None) -> int:
    """`gate`, `patches` and `rollout`; returns the exit code."""
    return run_command("releases", _main, argv)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m releases", description="Release new worker code safely.")
    parser.epilog = DEBUG_HELP
    commands = parser.add_subparsers(dest="command", required=True)
    gate = commands.add_parser("gate", help="replay open and recent closed runs against this checkout's workflows")
    gate.add_argument("--closed", type=int, default=DEFAULT_CLOSED, help="closed runs per workflow type (default 20)")
    gate.add_argument("--type", action="append", default=[], help="workflow type (repeatable; default: all)")
    gate.add_argument("--query", default="", help="a visibility query that narrows the runs")
    gate.add_argument("--histories", type=Path, help="a folder of JSON histories, instead of a cluster")
    patches = commands.add_parser("patches", help="which patches no open run needs any more")
    patches.add_argument("--query", default="", help="a visibility query that narrows the runs")
    rollout = commands.add_parser("rollout", help="ramp a new build, make it current, show the old ones draining")
    rollout.add_argument("--deployment-name", help="default: WORKER_DEPLOYMENT_NAME")
    rollout.add_argument("--build-id", required=True)
    rollout.add_argument("--ramp", default="", help="percentages to ramp through first, e.g. 10,50")
    rollout.add_argument("--pause-seconds", type=float, default=0.0, help="watch time after each ramp step")
    rollout.add_argument("--wait-seconds", type=float, default=60.0, help="how long to wait for the new workers")
    return parser


def _main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    settings = Settings.from_env()
    if args.command == "rollout":
        return _rollout(args, settings)
    if args.command == "patches":
        return asyncio.run(_patches(settings, args.query))
    if args.histories is not None:
        if not args.histories.is_dir():
            raise ConfigError(f"--histories {args.histories} is not a folder of JSON histories")
        candidates = file_candidates(args.histories)
        return asyncio.run(run_gate(product_replayer(settings), candidates))
    return asyncio.run(_gate_cluster(settings, args.closed, args.type, args.query))


async def _gate_cluster(settings: Settings, closed: int, types: Sequence[str], query: str) -> int:
    client = await connect(settings)
    candidates = await cluster_candidates(client, closed_per_type=closed, types=types, query=query)
    return await run_gate(product_replayer(settings), candidates)


async def run_gate(replayer: Replayer, candidates: Sequence[Candidate], say: Callable[[str], None] = print) -> int:
    """Replay `candidates`; print a summary and one line per run that would break; 1 if any would."""
    broken = await breakages(replayer, candidates)
    states = {s: sum(c.state == s for c in candidates) for s in ("open", "closed", "file")}
    counted = ", ".join(f"{n} {s}" for s, n in states.items() if n) or "no runs"
    say(f"replay gate: {len(candidates)} runs ({counted}) against this checkout: {len(broken)} would break")
    for breakage in broken:
        say(breakage.line())
    return 1 if broken else 0


async def _patches(settings: Settings, query: str) -> int:
    report = await patch_report(await connect(settings), query)
    for line in report.lines():
        print(line)
    return 0


def _rollout(args: argparse.Namespace, settings: Settings) -> int:
    deployment = args.deployment_name or settings.deployment.name
    if not deployment:
        raise ConfigError("no deployment named: pass --deployment-name or set WORKER_DEPLOYMENT_NAME")
    try:
        ramp = [float(p) for p in args.ramp.split(",") if p.strip()]
    except ValueError:
        raise ConfigError(f"--ramp must be percentages like 10,50, got {args.ramp!r}") from None
    if any(not 0 < p < 100 for p in ramp):
        raise ConfigError(f"--ramp percentages must be between 0 and 100 (exclusive), got {args.ramp!r}")
    plan = Rollout(deployment, args.build_id, ramp, args.pause_seconds, args.wait_seconds)
    return plan.run()
