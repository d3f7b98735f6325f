"""Run archives: one self-contained JSON object per run, its named annotations, and a command to find them.

    python -m store.archive list [--where final_answer~C123] [--where status=completed] [--json]
    python -m store.archive show <workflow id> [--run <first run id>]

An archive is `archives/<workflow id>/<first run id>.json` in the blob store (BLOB_STORE_*): the
final output, the conversations, and every offloaded item the run referenced, embedded and decoded,
so it stays readable after blobs expire and keys rotate. Annotations: see store/annotations.py.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from models.archive import ANNOTATION_NAMES, ArchiveRequest
from models.errors import BlobNotFound
from store.annotations import PROBE_NAME, SIDECAR_SUFFIX, Annotator
from store.blobs import BlobStore

PREFIX = "archives/"
FORMAT = "agent-run-archive/1"


def _segment(text: str) -> str:
    quoted = quote(text, safe="")
    return quoted.replace(".", "%2E") if set(quoted) == {"."} else quoted  # '.' and '..' are not path segments


def archive_name(workflow_id: str, first_run_id: str) -> str:
    """Where a run's archive lives; workflow ids may hold '/', so both parts are quoted."""
    return f"{PREFIX}{_segment(workflow_id)}/{_segment(first_run_id)}.json"


def parse_name(name: str) -> tuple[str, str] | None:
    """(workflow id, first run id) of an archive object name; None for sidecars and anything else."""
    if not name.startswith(PREFIX) or not name.endswith(".json") or name.endswith(SIDECAR_SUFFIX) or name == PROBE_NAME:
        return None
    parts = name[len(PREFIX) : -len(".json")].split("/")
    return (unquote(parts[0]), unquote(parts[1])) if len(parts) == 2 else None


async def embed_item(store: BlobStore, codec: PayloadCodec | None, key: str) -> dict[str, Any]:
    """One offloaded item, readable without the store or the keys: JSON as JSON, payloads decoded, else base64."""
    try:
        data = await asyncio.to_thread(store.get, key)
    except BlobNotFound:
        return {"missing": True}
    try:
        return {"json": json.loads(data)}
    except ValueError:
        pass
    try:
        payload = Payload.FromString(data)
        if payload.metadata.get("encoding"):  # a claim-checked payload: decrypt it if it was encrypted
            [plain] = await codec.decode([payload]) if codec else [payload]
            encoding = plain.metadata.get("encoding", b"").decode()
            content = json.loads(plain.data) if encoding.startswith("json/") else base64.b64encode(plain.data).decode()
            return {"payload_encoding": encoding, "content": content}
    except Exception:  # not a payload after all, or not decodable here: keep the bytes
        pass
    return {"base64": base64.b64encode(data).decode()}


def build_archive(request: ArchiveRequest, items: dict[str, Any]) -> bytes:
    """The archive document."""
    document = {
        "format": FORMAT,
        "archived_at": datetime.now(UTC).isoformat(),
        **request.model_dump(mode="json", exclude={"blob_keys"}),
        "items": items,
    }
    return json.dumps(document, ensure_ascii=False, indent=1).encode()


async def write_archive(
    store: BlobStore, annotator: Annotator, codec: PayloadCodec | None, request: ArchiveRequest
) -> tuple[str, str, bool]:
    """Write the archive unless it exists, then its annotations; returns (name, how annotated, written now)."""
    name = archive_name(request.workflow_id, request.first_run_id)
    exists = name in await asyncio.to_thread(store.list_objects, name)
    if not exists:
        items = {key: await embed_item(store, codec, key) for key in dict.fromkeys(request.blob_keys)}
        await asyncio.to_thread(
            store.put_object, name, build_archive(request, items), {"workflow-id": quote(request.workflow_id)}
        )
    labels = {label: request.annotations.get(label) for label in ANNOTATION_NAMES} | request.annotations
    how = await asyncio.to_thread(annotator.write, name, labels)
    return name, how, not exists


def matches(value: Any, op: str, expected: str) -> bool:
    """`=`: equal (strings as they are, anything else as JSON); `~`: contains, ignoring case."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text == expected if op == "=" else expected.casefold() in text.casefold()


def parse_where(condition: str) -> tuple[str, str, str]:
    """`field=value` or `field~value` -> (field, op, value)."""
    cut = min((i for i in (condition.find("="), condition.find("~")) if i > 0), default=-1)
    if cut < 0:
        raise ValueError(f"--where {condition!r}: expected FIELD=VALUE or FIELD~TEXT, e.g. final_answer~C123")
    return condition[:cut], condition[cut], condition[cut + 1 :]


def list_archives(
    store: BlobStore, annotator: Annotator, where: Sequence[tuple[str, str, str]]
) -> list[dict[str, Any]]:
    """Archived runs whose annotations meet every condition, with their status and customer."""
    rows = []
    for name in store.list_objects(PREFIX):
        ids = parse_name(name)
        if ids is None:
            continue
        wanted = {"status", "customer_id"} | {field for field, _, _ in where}
        labels = annotator.read(name, wanted)
        if all(field in labels and matches(labels[field], op, value) for field, op, value in where):
            rows.append({"workflow_id": ids[0], "first_run_id": ids[1], "name": name, **labels})
    return rows


def _main(argv: list[str] | None = None) -> int:
    from config.settings import Settings
    from models.errors import ConfigError
    from store.blobs import blob_store_from_env

    parser = argparse.ArgumentParser(prog="python -m store.archive", description="Find and read run archives.")
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
        store = blob_store_from_env()
        annotator = Annotator(store, settings.archive_s3_annotations)
        if args.command == "list":
            for row in list_archives(store, annotator, [parse_where(w) for w in args.where]):
                print(
                    json.dumps(row, ensure_ascii=False)
                    if args.json
                    else f"{row['workflow_id']}\t{row['first_run_id']}\t{row.get('status')}\t{row.get('customer_id') or '-'}"
                )
            return 0
        names = [n for n in store.list_objects(f"{PREFIX}{_segment(args.workflow_id)}/") if parse_name(n)]
        names = [n for n in names if args.run is None or parse_name(n) == (args.workflow_id, args.run)]
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
    except (ConfigError, ValueError) as exc:
        print(f"archive: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(_main())
