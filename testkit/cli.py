"""Cassettes and regression evals from the command line (docs/testing-your-agents.md).

python -m testkit export <workflow id> [--run <first run id>] [-o cassette.json]
python -m testkit replay cassette.json [--agents-file agents.toml] [--tool-modules m1,m2]
python -m testkit eval (--where agent=support ... | --cassette c.json ...) --agents-file changed.toml
                       [--tool-modules m1,m2] [--script script.toml | --live] [--judge AGENT]
                       [--dataset NAME] [--run-name NAME]   # Langfuse, when LANGFUSE_* are set

Archives are read from the blob store BLOB_STORE_* names, as `python -m archives` does. `replay` and `eval`
start their own Temporal server and worker (nothing is set up by hand). Exit status: 0 all passed, 1 a
divergence or regression, 2 a configuration or command-line error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from archives.annotations import Annotator
from archives.store import PREFIX, list_archives, name_segments, parse_where, segment
from config.cli import DEBUG_HELP, run_command
from config.settings import Settings
from payloads.blobs import BlobStore, blob_store
from testkit.cassette import Cassette, CassetteInvalid, from_archive
from testkit.evaluate import evaluate, summary_table
from testkit.kit import DEFAULT_MODEL, AgentKit
from testkit.langfuse_run import SCORES, write_dataset_run


def main(argv: list[str] | None = None) -> int:
    """`export`, `replay` and `eval`; returns the exit status."""
    return run_command("testkit", _main, argv)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m testkit", description=__doc__.split("\n\n")[0], epilog=DEBUG_HELP)
    commands = parser.add_subparsers(dest="command", required=True)
    export = commands.add_parser("export", help="an archived run as a cassette")
    export.add_argument("workflow_id")
    export.add_argument("--run", help="first run id, when the workflow id was reused")
    export.add_argument("-o", "--output", help="file to write (default: standard output)")
    for name, helptext in (("replay", "re-run a cassette offline"), ("eval", "regression evals of a suite")):
        command = commands.add_parser(name, help=helptext)
        command.add_argument("--agents-file", help="the agents file to run against (a changed one, for evals)")
        command.add_argument("--tool-modules", default="", help="comma-separated TOOL_MODULES")
        command.add_argument("--server", choices=("dev", "time-skipping"), default="dev")
    commands.choices["replay"].add_argument("cassette")
    evals = commands.choices["eval"]
    evals.add_argument("--where", action="append", default=[], help="archive annotation FIELD=VALUE or FIELD~TEXT")
    evals.add_argument("--cassette", action="append", default=[], help="a cassette file; repeatable")
    models = evals.add_mutually_exclusive_group()
    models.add_argument("--script", help="a dev-loop script (devstack/script.py) playing the model")
    models.add_argument("--live", action="store_true", help="call the real providers (ANTHROPIC_*, OPENAI_*)")
    evals.add_argument("--judge", help="an agent that judges outputs that differ (replies PASS or FAIL)")
    evals.add_argument("--dataset", default="agent-regressions", help="the Langfuse dataset (when LANGFUSE_* are set)")
    evals.add_argument("--run-name", help="the Langfuse dataset run's name (default: eval-<time>)")
    return parser


def _main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "export":
            return export(args)
        if args.command == "replay":
            return asyncio.run(replay(args))
        return asyncio.run(run_eval(args))
    except (CassetteInvalid, ValueError) as exc:
        print(f"testkit: {exc}", file=sys.stderr)
        return 2


def _store() -> tuple[BlobStore, Annotator]:
    settings = Settings.from_env()
    store = blob_store(settings.blobs, settings.payloads)
    return store, Annotator(store, settings.archive_s3_annotations)  # type: ignore[arg-type]


def archived(store: BlobStore, annotator: Annotator, workflow_id: str, run: str | None = None) -> Cassette:
    """The cassette of `workflow_id`'s newest archive (or of its first run `run`)."""
    names = [n for n in store.list_objects(f"{PREFIX}{segment(workflow_id)}/") if name_segments(n)]
    documents = sorted((json.loads(store.get_object(n)) for n in names), key=lambda d: d.get("archived_at", ""))
    documents = [d for d in documents if run is None or d.get("first_run_id") == run]
    if not documents:
        raise CassetteInvalid(f"no archive for workflow {workflow_id!r}" + (f" run {run!r}" if run else ""))
    return from_archive(documents[-1])


def export(args: argparse.Namespace) -> int:
    """Write one archived run's cassette."""
    store, annotator = _store()
    try:
        cassette = archived(store, annotator, args.workflow_id, args.run)
    except CassetteInvalid as exc:  # not found, or not a run a cassette can be made of: the command's own "no"
        print(f"testkit: {exc}", file=sys.stderr)
        return 1
    if args.output:
        cassette.save(args.output)
        print(
            f"cassette of {args.workflow_id}: {len(cassette.turns)} model replies, "
            f"{len(cassette.tool_calls)} tool calls -> {args.output}"
        )
    else:
        print(cassette.model_dump_json(indent=1))
    return 0


def _kit(args: argparse.Namespace, **options: Any) -> AgentKit:
    modules = [m for m in args.tool_modules.split(",") if m]
    options.setdefault("model", os.environ.get("AGENT_MODEL") or DEFAULT_MODEL)  # for runs that recorded no model
    return AgentKit(args.agents_file, modules, server=args.server, replace_built_ins=True, **options)


async def replay(args: argparse.Namespace) -> int:
    """Re-run a cassette with its recorded replies and tool outputs; 1 on a divergence or another status."""
    cassette = Cassette.load(args.cassette)
    async with _kit(args, **({"model": cassette.model} if cassette.model else {})) as kit:
        kit.script(*cassette.replies())
        report = await kit.run(
            cassette.prompt, cassette.agent, model=cassette.model, recording=cassette.recorded_calls()
        )
    problems = list(report.divergences)
    if report.status != cassette.status:
        problems.append(
            f"status {cassette.status} -> {report.status}" + (f" ({report.failure})" if report.failure else "")
        )
    for problem in problems:
        print(f"{args.cassette}: {problem}")
    print(
        f"{args.cassette}: {'DIVERGED' if problems else 'replayed'} ({report.status}, {len(report.tool_calls)} tool calls)"
    )
    return 1 if problems else 0


def suite(args: argparse.Namespace) -> list[Cassette]:
    """The cases: cassette files, then archived runs matching every --where."""
    cases = [Cassette.load(path) for path in args.cassette]
    if args.where or not cases:
        store, annotator = _store()
        for row in list_archives(store, annotator, [parse_where(w) for w in args.where]):
            try:
                cases.append(archived(store, annotator, row["workflow_id"], row["first_run_id"]))
            except CassetteInvalid as exc:  # e.g. a hybrid run: reported, and the rest of the suite still runs
                print(f"testkit: skipped: {exc}", file=sys.stderr)
    if not cases:
        raise ValueError("the suite is empty: no archive matches --where and no --cassette was given")
    return cases


async def run_eval(args: argparse.Namespace) -> int:
    """Run the suite against the agents file; print the summary table; 1 when any run regressed."""
    cases = suite(args)
    script = Path(args.script) if args.script else None
    async with _kit(args, script_file=script, dev_model=not args.live, live_models=args.live) as kit:
        results = await evaluate(kit, cases, args.judge)
    print(summary_table(results))
    langfuse = Settings.from_env().langfuse
    if langfuse is not None:
        run_name = args.run_name or f"eval-{datetime.now(UTC):%Y%m%dT%H%M%S}"
        await asyncio.to_thread(write_dataset_run, langfuse, args.dataset, run_name, results)
        print(f"Langfuse: dataset {args.dataset!r}, run {run_name!r} with scores {', '.join(SCORES)}")
    return 1 if any(r.regression for r in results) else 0
