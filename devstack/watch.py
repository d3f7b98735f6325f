"""The files the dev loop watches, and whether they changed: modification times polled, no dependency."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path

from tools.agents_file import read_agents_file

SETTLE_SECONDS = 0.3
"""How long files must stay unchanged before a change counts: editors often write a file in several steps."""

Stamp = tuple[int, int] | None


def stamp(path: Path) -> Stamp:
    """(mtime in ns, size), or None while the file does not exist."""
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size


class Watch:
    """Remembers the stamps of some files; `changed` says which differ since it last looked."""

    def __init__(self, paths: Iterable[Path]) -> None:
        self.stamps = {p: stamp(p) for p in paths}

    def changed(self) -> list[Path]:
        """The files whose stamp moved, once they have settled (empty when none did)."""
        moved = self._moved()
        while moved:
            time.sleep(SETTLE_SECONDS)
            more = self._moved()
            if not more:
                return sorted(moved)
            moved |= more
        return []

    def _moved(self) -> set[Path]:
        moved = set()
        for path, before in self.stamps.items():
            now = stamp(path)
            if now != before:
                self.stamps[path] = now
                moved.add(path)
        return moved


def module_files(module: str, search: Iterable[Path]) -> list[Path]:
    """The source files of `module` (a package: all its .py files), found as the import system would, first
    directory first, without importing it; empty when it is not found (the worker will say so)."""
    relative = Path(*module.split("."))
    for folder in search:
        single = folder / relative.with_suffix(".py")
        if single.is_file():
            return [single]
        package = folder / relative
        if (package / "__init__.py").is_file():
            return sorted(package.rglob("*.py"))
    return []


def agents_file_sources(agents_file: Path) -> list[Path]:
    """The agents file, the JSON Schema files it names, and the scripts its stdio MCP servers run."""
    parsed = read_agents_file(agents_file)
    found = [agents_file]
    for table in parsed.agents.values():
        if isinstance(table.output_schema, str):
            found.append(parsed.folder / table.output_schema)
    for server in parsed.servers.values():
        for part in server.command or []:
            candidate = parsed.folder / part
            if candidate.suffix in (".py", ".js", ".ts") and candidate.is_file():
                found.append(candidate.resolve())
    return found
