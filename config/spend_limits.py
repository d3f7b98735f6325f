"""Reading the `SPEND_LIMITS` file: a start error names the file, the line and what is wrong, in one line each.

The file's shape is models/spend_limits.py's `SpendLimits`; docs/spend-limits.md shows an example.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from models.errors import ConfigError
from models.spend_limits import LimitTable, SpendLimits


class SpendLimitsInvalid(ConfigError):
    """The SPEND_LIMITS file cannot be read or holds an error; the message has one line per problem."""


def read_spend_limits(path: str | None) -> SpendLimits | None:
    """The limits in `path` (None when SPEND_LIMITS is unset); `SpendLimitsInvalid` naming each problem's line."""
    if not path:
        return None
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SpendLimitsInvalid(f"SPEND_LIMITS={path}: cannot read it ({exc.strerror or exc})") from None
    problems = spend_limit_problems(text)
    if problems:
        raise SpendLimitsInvalid(f"SPEND_LIMITS file {path}: " + "; ".join(f"line {p}" for p in problems))
    return SpendLimits.model_validate(tomllib.loads(text))


def spend_limit_problems(text: str) -> list[str]:
    """Each problem of the file's text as `LINE: message` (LINE may be `?` when no line can be pointed at)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = re.search(r"line (\d+)", str(exc))
        return [f"{line.group(1) if line else '?'}: TOML syntax error: {exc}"]
    problems = [f"1: unknown top-level key {k!r} (expected [limits.NAME] tables)" for k in raw if k != "limits"]
    limits = raw.get("limits", {})
    if not isinstance(limits, dict):
        return [*problems, f"{_key_line(text, 0, 'limits')}: limits must be tables like [limits.default]"]
    for name, table in limits.items():
        header = _header_line(text, name)
        if not isinstance(table, dict):
            problems.append(f"{header or '?'}: [limits.{name!r}] must be a table")
            continue
        try:
            LimitTable.model_validate(table)
        except ValidationError as exc:
            for error in exc.errors():
                key = str(error["loc"][0]) if error["loc"] else ""
                at = _key_line(text, header, key) if key else header
                problems.append(f"{at or '?'}: limit {name!r}: {_message(error)}")
    return problems


def _message(error: Any) -> str:
    loc = ".".join(str(p) for p in error["loc"])
    if error["type"] == "extra_forbidden":
        return f"unknown key {loc!r} (expected day, month, on_limit, fairness_weight; windows take tokens, usd)"
    text = str(error["msg"]).removeprefix("Value error, ")
    return f"{loc}: {text}" if loc else text


def _header_line(text: str, name: str) -> int:
    """The line of `[limits.NAME]` (bare or quoted), 0 when the table is written some other way."""
    name = re.escape(name)
    quoted = f"(?:{name}|\"{name}\"|'{name}')"
    found = re.search(rf"^[ \t]*\[[ \t]*limits[ \t]*\.[ \t]*{quoted}[ \t]*\]", text, re.MULTILINE)
    return text.count("\n", 0, found.start()) + 1 if found else 0


def _key_line(text: str, after: int, key: str) -> int | None:
    """The first line after line `after` that sets `key` (`key = ...`), stopping at the next table header."""
    lines = text.splitlines()
    for number in range(after + 1, len(lines) + 1):
        line = lines[number - 1].strip()
        if number > after + 1 and line.startswith("[") and after:
            break
        if re.match(rf"^{re.escape(key)}\s*=", line):
            return number
    return after or None
