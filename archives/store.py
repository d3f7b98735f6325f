"""Run archives: one self-contained JSON object per run, written once, and finding them again (archives/cli.py).

An archive is `archives/<workflow id>/<first run id>.json` in the blob store (BLOB_STORE_*): the
final output, the conversations, and every offloaded item the run referenced, embedded and decoded,
so it stays readable after blobs expire and keys rotate. Annotations: see archives/annotations.py.
Both ids are quoted into one path segment each (`segment`), shortened when too long for a file name.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, unquote

from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from archives.annotations import PROBE_NAME, SIDECAR_SUFFIX, Annotator
from archives.models import ANNOTATION_NAMES, ArchiveRequest
from models.errors import BlobNotFound
from payloads.blobs import BlobStore

PREFIX = "archives/"
FORMAT = "agent-run-archive/1"


NAME_MAX = 255
"""The longest file or directory name of common filesystems (ext4, XFS, btrfs, APFS), in bytes."""
RUN_ROOM = NAME_MAX - len(SIDECAR_SUFFIX)
"""Room for the first run id's segment: the sidecar `<run>.annotations.json` is the longest file name made of it."""
SHORTENED = "!"
"""Joins a shortened segment's readable head to its hash. quote() never writes '!', so no id's full segment
can look like another id's shortened one."""


def segment(text: str, room: int = NAME_MAX) -> str:
    """`text` as one path segment of at most `room` bytes, the same for the writer and every reader.

    Quoted (workflow ids may hold '/'); when that is longer than `room`, its head, '!' and the SHA-256 of
    the whole text: stable, distinct for ids that share a long head, and still readable. Temporal allows
    workflow ids of 1000 bytes, and quoting can triple them, so without this they exceed the file name limit.
    Segments that fit are exactly what they always were, so archives written before are found.
    """
    quoted = quote(text, safe="")
    if set(quoted) == {"."}:
        quoted = quoted.replace(".", "%2E")  # '.' and '..' are not path segments
    if len(quoted) <= room:  # quoted text is ASCII: characters are bytes
        return quoted
    digest = hashlib.sha256(text.encode()).hexdigest()
    return f"{_quoted_head(text, room - len(SHORTENED) - len(digest))}{SHORTENED}{digest}"


def _quoted_head(text: str, room: int) -> str:
    """The quoted form of `text`'s longest head of whole characters that fits `room` (no half escape or character)."""
    head: list[str] = []
    for char in text:
        quoted = quote(char, safe="")
        room -= len(quoted)
        if room < 0:
            break
        head.append(quoted)
    return "".join(head)


def archive_name(workflow_id: str, first_run_id: str) -> str:
    """Where a run's archive lives: one segment per id (see `segment`)."""
    return f"{PREFIX}{segment(workflow_id)}/{segment(first_run_id, RUN_ROOM)}.json"


def name_segments(name: str) -> tuple[str, str] | None:
    """The (workflow id, first run id) segments of an archive object name; None for sidecars and anything else."""
    if not name.startswith(PREFIX) or not name.endswith(".json") or name.endswith(SIDECAR_SUFFIX) or name == PROBE_NAME:
        return None
    parts = name[len(PREFIX) : -len(".json")].split("/")
    return (parts[0], parts[1]) if len(parts) == 2 else None


def archive_ids(store: BlobStore, name: str) -> tuple[str, str] | None:
    """(workflow id, first run id) of an archive object; None for sidecars and anything else.

    Read from the name, or from the archive itself when a segment was shortened (a hash cannot be reversed).
    """
    segments = name_segments(name)
    if segments is None:
        return None
    if not any(SHORTENED in part for part in segments):
        return unquote(segments[0]), unquote(segments[1])
    document = json.loads(store.get_object(name))
    return str(document["workflow_id"]), str(document["first_run_id"])


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
        # The segment, not the whole quoted id: S3 allows 2 KB of user metadata; the archive holds the whole id.
        metadata = {"workflow-id": segment(request.workflow_id)}
        await asyncio.to_thread(store.put_object, name, build_archive(request, items), metadata)
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
        raise ValueError(
            f"--where {condition!r}: expected FIELD=VALUE or FIELD~TEXT, e.g. customer_id=C123 or final_answer~1200"
        )
    return condition[:cut], condition[cut], condition[cut + 1 :]


def list_archives(
    store: BlobStore, annotator: Annotator, where: Sequence[tuple[str, str, str]]
) -> list[dict[str, Any]]:
    """Archived runs whose annotations meet every condition, with their status and customer."""
    rows = []
    for name in store.list_objects(PREFIX):
        ids = archive_ids(store, name)
        if ids is None:
            continue
        wanted = {"status", "customer_id"} | {field for field, _, _ in where}
        labels = annotator.read(name, wanted)
        if all(field in labels and matches(labels[field], op, value) for field, op, value in where):
            rows.append({"workflow_id": ids[0], "first_run_id": ids[1], "name": name, **labels})
    return rows
