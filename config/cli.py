"""How every command of the product ends on a configuration or connection error: one line, exit status 2.

`worker.py`, `python -m gateway`, `python -m progress`, `python -m archives` and `python -m tools` run their
`main` through `run_command`. A `ConfigError` (a malformed setting, or an unreachable Temporal, which
`service/connect.py` turns into one with `temporal_unreachable`) and a Temporal refusal that only a setting can
fix print `<program>: <what is wrong, and the setting to change>` and exit 2. The traceback is for whoever
debugs the product itself: it is printed only with `--debug` (any position) or `LOG_LEVEL=DEBUG`.
"""

from __future__ import annotations

import os
import re
import sys
import traceback
from collections.abc import Callable
from typing import NoReturn

from temporalio.service import RPCError, RPCStatusCode

from config.settings import debug_requested
from models.errors import ConfigError

DEBUG_FLAG = "--debug"
DEBUG_HELP = "--debug (or LOG_LEVEL=DEBUG): print the traceback of a configuration or connection error too"
CONFIG_EXIT = 2
"""The exit status of a command stopped by its configuration (1 stays the command's own "no"/"not found")."""
INTERRUPTED_EXIT = 130

TEMPORAL_SETTINGS = (
    "TEMPORAL_ADDRESS (and TEMPORAL_NAMESPACE, TEMPORAL_API_KEY or TEMPORAL_TLS* if the cluster needs them)"
)
_TONIC_MESSAGE = re.compile(r'message: "([^"]+)"')


def run_command(program: str, main: Callable[[list[str]], int], argv: list[str] | None = None) -> int:
    """`main(argv without --debug)`'s exit status; configuration and connection errors as one line and 2."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = DEBUG_FLAG in args or debug_requested()
    try:
        return main([a for a in args if a != DEBUG_FLAG])
    except KeyboardInterrupt:
        return INTERRUPTED_EXIT
    except (ConfigError, RPCError) as exc:
        problem = exc if isinstance(exc, ConfigError) else rpc_problem(exc)
        if problem is None:
            raise  # a refusal no setting explains: a bug to see whole
        if debug:
            traceback.print_exc()
        print(f"{program}: {problem}", file=sys.stderr, flush=True)
        return CONFIG_EXIT


def exit_now(code: int) -> NoReturn:
    """End the process with `code` once its output is flushed, skipping interpreter teardown.

    sdk-python#300: a process that ran the SDK's core runtime may abort while the interpreter tears down, which
    would turn a clean exit into a crash. Every command's `__main__` ends here.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def temporal_unreachable(target: str, exc: BaseException) -> ConfigError:
    """The error for a client that could not connect to `target` (the SDK's RuntimeError or RPCError)."""
    text = exc.message if isinstance(exc, RPCError) else str(exc)
    found = _TONIC_MESSAGE.search(text)  # the socket's own words inside the SDK's nested transport error
    if found:
        reason = found.group(1)
    else:
        reason = text.splitlines()[0][:200] if text else type(exc).__name__
    return ConfigError(f"cannot reach Temporal at {target} ({reason}): check {TEMPORAL_SETTINGS}")


def rpc_problem(exc: RPCError) -> ConfigError | None:
    """A Temporal refusal that a setting fixes (wrong namespace, credentials, a cluster gone), else None."""
    if exc.status == RPCStatusCode.NOT_FOUND and "namespace" in exc.message.lower():
        return ConfigError(f"Temporal says: {exc.message} Set TEMPORAL_NAMESPACE to an existing namespace")
    if exc.status in (RPCStatusCode.UNAUTHENTICATED, RPCStatusCode.PERMISSION_DENIED):
        return ConfigError(f"Temporal refused this client ({exc.message}): check TEMPORAL_API_KEY or TEMPORAL_TLS*")
    if exc.status == RPCStatusCode.UNAVAILABLE:
        return ConfigError(f"Temporal stopped answering ({exc.message}): check {TEMPORAL_SETTINGS}")
    return None
