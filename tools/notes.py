"""`search_notes` and `write_note`: notes kept durably in a local SQLite file (`NOTES_DB`).

Writes carry an idempotency key (workflow id + step), so a retried or re-run
activity finds its earlier write instead of adding a second note.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from tools.registry import CallInfo, Tool

if TYPE_CHECKING:
    from tools.deps import ToolDeps

_SCHEMA = """
CREATE TABLE IF NOT EXISTS notes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    idempotency_key TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL
)
"""


@dataclass(frozen=True)
class Note:
    """A stored note."""

    id: int
    idempotency_key: str
    title: str
    body: str
    created_at: str


class NoteStore:
    """The SQLite notes file; each call opens its own connection so threads never share one."""

    def __init__(self, path: str) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        # Created 0600 before SQLite opens it (its journal files copy the mode): notes are the users' data.
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        conn = sqlite3.connect(self.path, timeout=10)
        conn.execute(_SCHEMA)
        return conn

    def write(self, idempotency_key: str, title: str, body: str) -> tuple[Note, bool]:
        """Store a note once per key; returns the note and whether this call created it."""
        with self._connect() as conn:
            cur = conn.execute(
                "INSERT INTO notes (idempotency_key, title, body, created_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(idempotency_key) DO NOTHING",
                (idempotency_key, title, body, datetime.now(UTC).isoformat()),
            )
            created = cur.rowcount == 1
            row = conn.execute("SELECT * FROM notes WHERE idempotency_key = ?", (idempotency_key,)).fetchone()
        return Note(*row), created

    def search(self, query: str, limit: int = 10) -> list[Note]:
        """Notes whose title or body contains `query` (case-insensitive), newest first."""
        pattern = f"%{query}%"
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT * FROM notes WHERE title LIKE ? OR body LIKE ? ORDER BY id DESC LIMIT ?",
                (pattern, pattern, limit),
            ).fetchall()
        return [Note(*row) for row in rows]

    def all(self) -> list[Note]:
        """Every note, oldest first."""
        with self._connect() as conn:
            return [Note(*row) for row in conn.execute("SELECT * FROM notes ORDER BY id").fetchall()]


class SearchNotesArgs(BaseModel):
    """Arguments of `search_notes`."""

    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1, max_length=200, description="Text to look for in note titles and bodies")


class WriteNoteArgs(BaseModel):
    """Arguments of `write_note`."""

    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=20_000)


async def search_notes_handler(args: SearchNotesArgs, deps: ToolDeps, call: CallInfo) -> str:
    """Handler: matching notes, one per line, or a plain 'no notes' answer."""
    notes = await asyncio.to_thread(deps.notes.search, args.query)
    if not notes:
        return f"No notes match {args.query!r}."
    return "\n".join(f"#{n.id} {n.title}: {n.body}" for n in notes)


async def write_note_handler(args: WriteNoteArgs, deps: ToolDeps, call: CallInfo) -> str:
    """Handler: store the note exactly once for this idempotency key."""
    note, created = await asyncio.to_thread(deps.notes.write, call.idempotency_key, args.title, args.body)
    return f"Saved note #{note.id} {note.title!r}." if created else f"Note #{note.id} {note.title!r} was already saved."


search_notes = Tool(
    name="search_notes",
    description="Search saved notes by text. Returns matching notes with their ids.",
    args=SearchNotesArgs,
    handler=search_notes_handler,
    effect="read",
)

write_note = Tool(
    name="write_note",
    description="Save a note with a title and a body. A person must approve it first.",
    args=WriteNoteArgs,
    handler=write_note_handler,
    effect="write",
    requires_approval=True,
)
