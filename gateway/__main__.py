"""`python -m gateway [--debug]`: settings, tokens, one Temporal client (as the worker builds it), uvicorn until SIGTERM.

The workers' AGENTS_FILE, when set, is read at start for the agents' names (gateway/known_agents.py); a problem in
it stops the gateway as it stops a worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

import uvicorn
from starlette.types import ASGIApp

from config.cli import exit_now, run_command
from config.gateway import GatewaySettings
from config.settings import Settings
from gateway.app import build_app
from gateway.known_agents import KnownAgents
from gateway.protocol import read_deadline_protocol
from gateway.tokens import load_tokens
from service.connect import connect
from telemetry.tracing import shutdown_tracing


def uvicorn_config(app: ASGIApp, gateway: GatewaySettings, log_level: str) -> uvicorn.Config:
    """uvicorn as the gateway runs it, with every connection limit a setting (config/gateway.py).

    The body limit is the app's (gateway/limits.py); here: header size, the deadline for reading a request
    (gateway/protocol.py: uvicorn has no header or body read timeout), keep-alive, and the connection cap.
    """
    return uvicorn.Config(
        app,
        host=gateway.host,
        port=gateway.port,
        http=read_deadline_protocol(gateway.read_timeout_seconds),
        h11_max_incomplete_event_size=gateway.max_header_bytes,
        timeout_keep_alive=gateway.keep_alive_seconds,
        limit_concurrency=gateway.max_connections,
        access_log=False,  # approval links are capabilities and would land in it
        log_level=log_level,
    )


async def serve(settings: Settings) -> None:
    """Serve until uvicorn is told to stop (SIGTERM / SIGINT)."""
    tokens = load_tokens(settings.gateway.tokens_file)
    agents = KnownAgents.load(settings.agents_file)  # like a worker: a bad agents file stops it before Temporal
    client = await connect(settings)
    app = build_app(client, settings, tokens, agents)
    server = uvicorn.Server(uvicorn_config(app, settings.gateway, settings.log_level.lower()))
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


def cli() -> None:
    """The `durable-agents-gateway` command."""
    exit_now(main())


if __name__ == "__main__":
    cli()
