"""What a worker says when an MCP server does not start: the failure in one line and its likely cause."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from pathlib import Path

import mcp_types
from mcp.shared.exceptions import MCPError

from tools.mcp_config import McpServerConfig


def describe_start_failure(exc: BaseException, config: McpServerConfig, folder: Path) -> str:
    """Why a server did not start, in one line, with its likely cause."""
    if isinstance(exc, TimeoutError):
        return f"did not start and list its tools within {config.timeout_seconds:g}s (timeout_seconds)"
    while isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        exc = exc.exceptions[0]
    return f"did not start: {type(exc).__name__}: {exc}" + start_hint(exc, config, folder)


_PYTHON = re.compile(r"^python(\d+(\.\d+)?)?$")


def start_hint(exc: BaseException, config: McpServerConfig, folder: Path) -> str:
    """The likely cause of a stdio server that never answered: its program, as the worker's PATH resolves it.

    The usual one is `python` (or another interpreter) that is not the worker's own: the server's imports
    (`mcp` first) fail there, the process exits, and the client sees only "Connection closed".
    """
    command = config.command
    closed = isinstance(exc, MCPError) and exc.code == mcp_types.CONNECTION_CLOSED
    if command is None or not (closed or isinstance(exc, OSError)):
        return ""
    program = command[0]
    if "/" in program:
        found: str | None = str(program if Path(program).is_absolute() else folder / program)
    else:
        found = shutil.which(program, path=config.env.get("PATH"))
    own = sys.executable
    if found is None or not Path(found).exists():
        return f"; `{program}` is not on the worker's PATH: give its full path (this worker runs {own})"
    if _PYTHON.match(Path(program).name) and not _same_dir(found, own):
        which = f"`{program}` is" + ("" if program == found else f" {found},")
        return (
            f"; {which} not this worker's interpreter {own}, and may lack the server's packages "
            f'(mcp): write command = ["{own}", ...] or put {Path(own).parent} first on PATH'
        )
    return f"; the server exited before answering: run {shlex.join(command)} yourself to see why (its errors are on the worker's stderr)"


def _same_dir(a: str, b: str) -> bool:
    """Whether two programs sit in one directory (a virtualenv's bin may be reached through a symlink)."""
    try:
        return os.path.samefile(Path(a).parent, Path(b).parent)
    except OSError:
        return False
