"""`python -m gateway [--debug]`: settings, tokens, one Temporal client (as the worker builds it), uvicorn until SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys

import uvicorn

from config.cli import run_command
from config.settings import Settings
from gateway.app import build_app
from gateway.tokens import load_tokens
from service.connect import connect
from telemetry.tracing import shutdown_tracing


async def serve(settings: Settings) -> None:
    """Serve until uvicorn is told to stop (SIGTERM / SIGINT)."""
    tokens = load_tokens(settings.gateway.tokens_file)
    client = await connect(settings)
    app = build_app(client, settings, tokens)
    # No access log: approval links are capabilities and would land in it.
    config = uvicorn.Config(
        app,
        host=settings.gateway.host,
        port=settings.gateway.port,
        access_log=False,
        log_level=settings.log_level.lower(),
    )
    server = uvicorn.Server(config)
    # Stop on SIGTERM / SIGINT and exit 0 (uvicorn's own handling re-raises the signal after shutdown).
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: setattr(server, "should_exit", True))
    await server.serve()


def main(argv: list[str] | None = None) -> int:
    """Exit 2 with one line naming the variable or file when the configuration is wrong or Temporal unreachable."""
    return run_command("gateway", _main, argv)


def _main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = Settings.from_env()
        asyncio.run(serve(settings))
    finally:
        shutdown_tracing()
    return 0


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # sdk-python#300: an SDK process may abort at interpreter exit
