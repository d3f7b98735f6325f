"""Reading dataclass settings from an environment mapping: each field names its variable, parser and default once.

A field declared with `var("NAME", default, parser)` is read by `read(cls, env)`: unset or empty means
the field's default; anything else goes through the parser, which raises ConfigError naming the variable.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from models.errors import ConfigError

T = TypeVar("T")
Parser = Callable[[str, str, Any], Any]
"""(variable name, raw non-empty value, the field's default) -> value."""


def text(name: str, raw: str, default: Any) -> str:
    """The value as it is."""
    return raw


def integer(minimum: int = 0, maximum: int | None = None, what: str = "") -> Parser:
    """An integer of at least `minimum` (and at most `maximum`, described as `what` in the message)."""

    def parse(name: str, raw: str, default: Any) -> int:
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{name} must be an integer, got {raw!r}") from None
        if value < minimum:
            raise ConfigError(f"{name} must be at least {minimum}, got {value}")
        if maximum is not None and value > maximum:
            raise ConfigError(f"{name} must be {what}, got {value}")
        return value

    return parse


port = integer(0, 65535, "a TCP port (1-65535, or 0 for off)")


def boolean(name: str, raw: str, default: Any) -> bool:
    """true/false, 1/0, yes/no, on/off; blank keeps the default."""
    value = raw.strip().lower()
    if value == "":
        return bool(default)
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false (1/0, yes/no), got {value!r}")


def choice(*allowed: str) -> Parser:
    """One of `allowed`, case-insensitive."""

    def parse(name: str, raw: str, default: Any) -> str:
        value = raw.strip().lower()
        if value not in allowed:
            raise ConfigError(f"{name} must be one of {', '.join(allowed)}, got {raw!r}")
        return value

    return parse


def switch(name: str, raw: str, default: Any) -> bool:
    """1/0, true/false, on/off."""
    return choice("1", "0", "true", "false", "on", "off")(name, raw, default) in ("1", "true", "on")


def http_url(name: str, raw: str, default: Any) -> str:
    """An http(s) URL."""
    if not raw.startswith(("http://", "https://")):
        raise ConfigError(f"{name} must be an http(s) URL, got {raw!r}")
    return raw


def csv(name: str, raw: str, default: Any) -> tuple[str, ...]:
    """Comma-separated values, blanks dropped, trailing slashes cut (origins)."""
    return tuple(s.strip().rstrip("/") for s in raw.split(",") if s.strip())


def names(name: str, raw: str, default: Any) -> tuple[str, ...]:
    """Comma-separated names (modules), blanks dropped."""
    return tuple(s.strip() for s in raw.split(",") if s.strip())


def rates(name: str, raw: str, default: Any) -> tuple[tuple[str, float], ...]:
    """`provider=rate` pairs, comma-separated (`anthropic=5,openai=2.5`): activities per second, above 0."""
    pairs: list[tuple[str, float]] = []
    for item in (s.strip() for s in raw.split(",")):
        if not item:
            continue
        key, sep, number = item.partition("=")
        try:
            rate = float(number)
        except ValueError:
            rate = -1.0
        if not sep or not key.strip() or not rate > 0 or rate == float("inf"):
            raise ConfigError(f"{name} must be provider=rate pairs like 'anthropic=5,openai=2.5', got {item!r}")
        pairs.append((key.strip(), rate))
    return tuple(pairs)


def var(name: str, default: Any, parse: Parser = text, *, repr: bool = True) -> Any:
    """A settings field read from variable `name` (immutable default); `repr=False` keeps secrets out of logs."""
    return dataclasses.field(default=default, repr=repr, metadata={"env": name, "parse": parse})


def value(env: Mapping[str, str], name: str, parse: Parser, default: Any) -> Any:
    """Variable `name` through `parse`, or `default` when it is unset or empty."""
    raw = env.get(name)
    return parse(name, raw, default) if raw else default


def read(cls: type[T], env: Mapping[str, str], **computed: Any) -> T:
    """An instance of the dataclass `cls` from `env`: its `var` fields parsed, the rest from `computed`."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if "env" not in f.metadata:
            continue
        values[f.name] = value(env, f.metadata["env"], f.metadata["parse"], f.default)
    return cls(**values, **computed)
