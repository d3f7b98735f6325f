"""The README's fenced blocks and the words after each block's language that say how tests/test_readme.py runs it.

    ```bash test:shell pending=my-run expect="waiting_for_approval"

`test:KIND` names what the block is; `key=value` options (quoted with shell rules, repeatable) say when to run
it and what its output must show. Kinds and options are listed in `KINDS`; docs/tests.md explains them.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

KINDS: dict[str, set[str]] = {
    "intro": set(),  # the two first commands: the demo (run for real) and the test suite (run on one test)
    "background": {"name", "stop", "ready"},  # one long-lived command, in a terminal of its own
    "shell": {"stop", "pending", "ready", "expect", "link"},  # commands typed in the reader's terminal
    "file": {"path"},  # a file the reader saves (relative to the checkout)
    "result": {"of"},  # a run's result as shown: compared with the real one
    "compose": set(),  # `cp` run; `docker compose` lines checked by the real Compose v2 parser (no engine here)
}
"""Every kind, with the options it takes."""

_FENCE = re.compile(r"^(`{3,})(.*)$")


@dataclass
class Block:
    """One fenced block: where it is, its language, how it is tested, and its text."""

    source: str
    line: int
    lang: str
    kind: str | None
    options: dict[str, list[str]] = field(default_factory=dict)
    text: str = ""

    def option(self, key: str) -> str | None:
        """The option's value (the last one given), or None."""
        return self.options[key][-1] if key in self.options else None

    @property
    def where(self) -> str:
        """`README.md:42`, for messages."""
        return f"{self.source}:{self.line}"


def parse_blocks(path: Path) -> list[Block]:
    """Every fenced block of a Markdown file, in order; a malformed `test:` info string is a ValueError."""
    blocks: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        opened = _FENCE.match(lines[i])
        if not opened:
            i += 1
            continue
        fence, info = opened.groups()
        end = next((j for j in range(i + 1, len(lines)) if lines[j].startswith(fence)), None)
        if end is None:
            raise ValueError(f"{path.name}:{i + 1}: fenced block never closed")
        blocks.append(_block(path.name, i + 1, info, "\n".join(lines[i + 1 : end]) + "\n"))
        i = end + 1
    return blocks


def _block(source: str, line: int, info: str, text: str) -> Block:
    words = shlex.split(info)
    lang, marks = (words[0], words[1:]) if words else ("", [])
    block = Block(source, line, lang, None, text=text)
    if not marks:
        return block
    where = f"{source}:{line}"
    if not marks[0].startswith("test:"):
        raise ValueError(f"{where}: after the language, expected test:KIND, got {marks[0]!r}")
    block.kind = marks[0].removeprefix("test:")
    if block.kind not in KINDS:
        raise ValueError(f"{where}: unknown kind {block.kind!r} (known: {', '.join(KINDS)})")
    for mark in marks[1:]:
        key, sep, value = mark.partition("=")
        if not sep or key not in KINDS[block.kind]:
            raise ValueError(f"{where}: {mark!r} is not one of test:{block.kind}'s options {sorted(KINDS[block.kind])}")
        block.options.setdefault(key, []).append(value)
    return block


def commands(text: str) -> list[list[str]]:
    """A block's commands as argument lists: one per line (`\\` continuations joined), comments left out."""
    joined = re.sub(r"\\\n\s*", " ", text)
    return [argv for argv in (shlex.split(row, comments=True) for row in joined.splitlines()) if argv]
