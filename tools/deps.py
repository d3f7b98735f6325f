"""The tools' dependencies: what handlers share across calls, built once per worker from its settings."""

from __future__ import annotations

from dataclasses import dataclass

from config.settings import Settings
from tools.notes import NoteStore


@dataclass(frozen=True)
class ToolDeps:
    """Process-wide dependencies of the tool handlers; every call gets the worker's one instance."""

    notes: NoteStore
    """The SQLite notes file of `search_notes` and `write_note` (`NOTES_DB`)."""

    @classmethod
    def from_settings(cls, settings: Settings) -> ToolDeps:
        """The one place tool configuration is read: a tool that needs a setting gets its dependency built here."""
        return cls(notes=NoteStore(settings.notes_db))
