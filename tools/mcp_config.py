"""An `[mcp_servers.NAME]` table of the agents file: its fields, checks and `${VAR}` substitution."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, model_validator

SEPARATOR = "__"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class McpServerConfig(BaseModel):
    """One `[mcp_servers.NAME]` table: a stdio `command` or a Streamable HTTP `url`, and the tools' policy."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    command: list[str] | None = Field(default=None, min_length=1)
    """stdio: the program and its arguments; relative paths and the working directory are the agents file's folder."""
    env: dict[str, str] = Field(default_factory=dict)
    """stdio: extra environment of the server process (`${VAR}` from the worker's environment)."""
    url: str | None = Field(default=None, pattern=r"^https?://")
    """Streamable HTTP endpoint."""
    headers: dict[str, str] = Field(default_factory=dict)
    """HTTP: request headers (`${VAR}` from the worker's environment)."""
    read_tools: list[str] = Field(default_factory=list)
    """fnmatch patterns of read tools; default: none (a server's readOnlyHint alone is not trusted)."""
    approval_tools: list[str] | None = None
    """fnmatch patterns of tools that need approval; default: every tool that is not read."""
    timeout_seconds: float = Field(default=30, gt=0)
    """Start-up and listing, and each call."""
    max_attempts: int = Field(default=3, ge=1)

    @model_validator(mode="after")
    def _one_transport(self) -> McpServerConfig:
        if (self.command is None) == (self.url is None):
            raise ValueError("give either command (stdio) or url (Streamable HTTP)")
        if self.url is not None and self.env:
            raise ValueError("env is for stdio servers (command); an HTTP server takes headers")
        if self.command is not None and self.headers:
            raise ValueError("headers are for HTTP servers (url); a stdio server takes env")
        return self


def substitute(value: str, environ: Mapping[str, str], where: str) -> str:
    """`${VAR}` replaced from `environ`; an unset variable is a ValueError naming it and `where`."""

    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            raise ValueError(f"{where} uses ${{{name}}}, which is not set in the worker's environment")
        return environ[name]

    return _VAR.sub(one, value)


def matches(name: str, patterns: list[str]) -> bool:
    """Whether a tool's name matches one of a table's `read_tools` or `approval_tools` patterns."""
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)
