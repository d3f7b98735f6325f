"""What a person is shown of text a model (or a tool, or a remote server) wrote: nothing invisible.

One policy for the approval page (gateway/page.py) and the terminal follower (progress/render.py). Control
characters (C0, DEL, C1: escape sequences, carriage returns, backspaces), Unicode format characters (bidi
embeddings, overrides and isolates, U+200E/U+200F/U+061C marks, zero-width spaces and joiners, U+FEFF,
soft hyphens, tag characters), line and paragraph separators and lone surrogates are replaced by the
escape JSON would write for them: `\\u202e`, `\\r`, a surrogate pair beyond the BMP (`\\udb40\\udc41`),
and in one-line text also `\\n` and `\\t`; so a JSON document passed through stays the same JSON.

Such characters can reorder what a reviewer reads (a right-to-left override makes `txt.exe` look like
`exe.txt`), hide text, rewrite a terminal line or send the terminal commands; shown as escapes they can
do none of that, and a reviewer sees that they were there.
"""

from __future__ import annotations

import re
import unicodedata

INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
"""Control, format, surrogate, line- and paragraph-separator characters (Unicode general categories)."""

_SHORT = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}
_CANDIDATES_MULTILINE = re.compile(r"[^\t\n\x20-\x7e]")
_CANDIDATES_ONE_LINE = re.compile(r"[^\x20-\x7e]")
"""Every character that might be invisible (cheap to find); `_mark` decides by its category."""


def visible(text: str, *, multiline: bool = True) -> str:
    """`text` with every invisible character shown as an escape; `multiline` keeps newlines and tabs."""
    pattern = _CANDIDATES_MULTILINE if multiline else _CANDIDATES_ONE_LINE
    return pattern.sub(_mark, text)


def _mark(match: re.Match[str]) -> str:
    char = match.group()
    if unicodedata.category(char) not in INVISIBLE_CATEGORIES:
        return char
    if char in _SHORT:
        return _SHORT[char]
    units = char.encode("utf-16-be", "surrogatepass")  # beyond the BMP: a surrogate pair, as JSON writes it
    return "".join(f"\\u{int.from_bytes(units[i : i + 2], 'big'):04x}" for i in range(0, len(units), 2))
