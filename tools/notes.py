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
from typing import Annotated

from pydantic import Field

from tools.decorator import ToolContext, tool

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


@tool(effect="read", timeout_seconds=10)  # fast and in-process: runs as a local activity (workflows/tool_plan.py)
async def search_notes(
    query: Annotated[
        str, Field(min_length=1, max_length=200, description="Text to look for in note titles and bodies")
    ],
    context: ToolContext,
) -> str:
    """Search saved notes by text. Returns matching notes with their ids."""
    notes = await asyncio.to_thread(context.deps.notes.search, query)
    if not notes:
        return f"No notes match {query!r}."
    return "\n".join(f"#{n.id} {n.title}: {n.body}" for n in notes)


@tool(effect="write", requires_approval=True)
async def write_note(
    title: Annotated[str, Field(min_length=1, max_length=200)],
    body: Annotated[str, Field(min_length=1, max_length=20_000)],
    context: ToolContext,
) -> str:
    """Save a note with a title and a body. A person must approve it first."""
    note, created = await asyncio.to_thread(context.deps.notes.write, context.idempotency_key, title, body)
    return f"Saved note #{note.id} {note.title!r}." if created else f"Note #{note.id} {note.title!r} was already saved."
