"""Find and read run archives in the blob store (BLOB_STORE_*).

python -m archives list [--where customer_id=C123] [--where final_answer~1200] [--json]
python -m archives show <workflow id> [--run <first run id>]

A malformed setting or `--where` is one line and exit status 2 (`--debug` adds the traceback).
"""

from __future__ import annotations

import argparse
import json
import sys

from archives.annotations import Annotator
from archives.store import PREFIX, archive_name, list_archives, name_segments, parse_where, segment
from config.cli import DEBUG_HELP, run_command
from config.settings import Settings
from payloads.blobs import blob_store


def main(argv: list[str] | None = None) -> int:
    """`list` and `show`; returns the exit code (config/cli.py: configuration errors are one line, status 2)."""
    return run_command("archives", _main, argv)


def _main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m archives", description="Find and read run archives.", epilog=DEBUG_HELP
    )
    commands = parser.add_subparsers(dest="command", required=True)
    lister = commands.add_parser("list", help="archived runs, filtered by annotation fields")
    lister.add_argument(
        "--where", action="append", default=[], help="FIELD=VALUE (equal) or FIELD~TEXT (contains); repeatable"
    )
    lister.add_argument("--json", action="store_true", help="one JSON object per line")
    shower = commands.add_parser("show", help="print one run's archive")
    shower.add_argument("workflow_id")
    shower.add_argument("--run", help="first run id, when the workflow id was reused")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        store = blob_store(settings.blobs, settings.payloads)  # sealed archives are shown decrypted
        annotator = Annotator(store, settings.archive_s3_annotations)  # type: ignore[arg-type]
        if args.command == "list":
            for row in list_archives(store, annotator, [parse_where(w) for w in args.where]):
                print(
                    json.dumps(row, ensure_ascii=False)
                    if args.json
                    else f"{row['workflow_id']}\t{row['first_run_id']}\t{row.get('status')}\t{row.get('customer_id') or '-'}"
                )
            return 0
        # The writer's names: a shortened segment lists only its own id's archives (its hash is of the whole id).
        names = [n for n in store.list_objects(f"{PREFIX}{segment(args.workflow_id)}/") if name_segments(n)]
        names = [n for n in names if args.run is None or n == archive_name(args.workflow_id, args.run)]
        if not names:
            print(
                f"no archive for workflow {args.workflow_id!r}" + (f" run {args.run!r}" if args.run else ""),
                file=sys.stderr,
            )
            return 1
        documents = sorted((json.loads(store.get_object(n)) for n in names), key=lambda d: d.get("archived_at", ""))
        if len(documents) > 1:
            print(
                f"{len(documents)} archives for this workflow id; showing the newest (pick one with --run)",
                file=sys.stderr,
            )
        print(json.dumps(documents[-1], ensure_ascii=False, indent=1))
        return 0
    except ValueError as exc:  # a malformed --where: the command line's own mistake
        print(f"archives: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
