"""MCP servers as registry tools: one long-lived client session per server per worker process.

Each session is owned by a background task, so the `mcp` package's anyio context managers (transport,
`ClientSession`) are entered and exited in one task. A call that finds the server gone (its process
crashed, its HTTP endpoint closed) fails retryably and drops the session; the next call opens a new one.

Model-facing names are `<server>__<tool>`: Anthropic and OpenAI accept tool names matching
`^[a-zA-Z0-9_-]{1,64}$`, so server and tool names must fit that together.

A tool is `read` (and so needs no approval by default) only when the agents file's `read_tools` lists it:
a server's own `readOnlyHint` is a claim by the server, and a server you do not control could mark a
destructive tool read. Loading warns, once per server, about tools it annotates but the file does not list.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any, cast

import anyio
import mcp_types
from mcp import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

from models.errors import ToolInputError
from models.visible import visible
from tools.mcp_config import SEPARATOR, McpServerConfig, matches, substitute
from tools.mcp_start import describe_start_failure
from tools.registry import CallInfo, Tool, default_retry

log = logging.getLogger(__name__)

IDEMPOTENCY_META_KEY = "idempotency_key"
"""The key of the call's idempotency key in each `tools/call` request's `_meta`."""


class McpServerUnavailable(ConnectionError):
    """The server went away (process died, connection closed): retryable; the next call reopens the session."""


class McpServer:
    """One server's session, opened by `start` and reopened by the first call after it broke."""

    def __init__(self, name: str, config: McpServerConfig, folder: Path, environ: Mapping[str, str]) -> None:
        self.name = name
        self.config = config
        self.folder = folder
        """Where a relative command or `cwd` is resolved: the agents file's directory."""
        self._environ = environ
        self._session: ClientSession | None = None
        self._owner: asyncio.Task[None] | None = None
        self._closing: asyncio.Event | None = None
        self._lock = asyncio.Lock()

    async def start(self) -> list[mcp_types.Tool]:
        """Open the session and list the tools, within `timeout_seconds`."""
        async with self._lock:
            return await self._open()

    async def _open(self) -> list[mcp_types.Tool]:
        ready: asyncio.Future[list[mcp_types.Tool]] = asyncio.get_running_loop().create_future()
        ready.add_done_callback(lambda f: f.cancelled() or f.exception())  # a late failure is not "never retrieved"
        closing = asyncio.Event()
        owner = asyncio.create_task(self._own(ready, closing), name=f"mcp server {self.name}")
        try:
            listed = await asyncio.wait_for(asyncio.shield(ready), self.config.timeout_seconds)
        except BaseException:
            closing.set()
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(owner, 5)
            raise
        self._owner, self._closing = owner, closing
        return listed

    async def _own(self, ready: asyncio.Future[list[mcp_types.Tool]], closing: asyncio.Event) -> None:
        """The background task that holds the transport and session open until `closing` is set."""
        try:
            async with contextlib.AsyncExitStack() as stack:
                read, write = await stack.enter_async_context(self._transport(stack))
                session = await stack.enter_async_context(ClientSession(read, write))
                await session.initialize()
                listed = await _list_all(session)
                self._session = session
                ready.set_result(listed)
                await closing.wait()
        except BaseException as exc:
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else RuntimeError(repr(exc)))
            elif not isinstance(exc, asyncio.CancelledError):
                log.warning("MCP server %s: session ended: %s: %s", self.name, type(exc).__name__, exc)
        finally:
            self._session = None

    def _transport(self, stack: contextlib.AsyncExitStack) -> Any:
        if self.config.command is not None:
            program, *args = self.config.command
            if "/" in program and not Path(program).is_absolute():
                program = str(self.folder / program)
            env = {
                k: substitute(v, self._environ, f"[mcp_servers.{self.name}] env.{k}")
                for k, v in self.config.env.items()
            }
            return stdio_client(StdioServerParameters(command=program, args=args, env=env, cwd=str(self.folder)))
        headers = {
            k: substitute(v, self._environ, f"[mcp_servers.{self.name}] headers.{k}")
            for k, v in self.config.headers.items()
        }
        assert self.config.url is not None  # the config has one transport
        return streamable_http_client(self.config.url, http_client=create_mcp_http_client(headers=headers))

    async def _current(self) -> ClientSession:
        """The open session, reopened if the last one broke."""
        async with self._lock:
            if self._session is None:
                await self._shutdown_owner()
                try:
                    await self._open()
                except Exception as exc:
                    raise McpServerUnavailable(f"MCP server {self.name!r} cannot be reached: {exc}") from exc
            assert self._session is not None
            return self._session

    async def call(self, tool: str, arguments: dict[str, Any], idempotency_key: str) -> str:
        """The tool's text and structured content; an error result is a ToolInputError for the model."""
        session = await self._current()
        try:
            result = await session.call_tool(
                tool,
                arguments,
                read_timeout_seconds=self.config.timeout_seconds,
                meta=_meta(idempotency_key),
            )
        except MCPError as exc:
            if exc.code == mcp_types.CONNECTION_CLOSED:
                await self._broken(session)
                raise McpServerUnavailable(f"MCP server {self.name!r} closed the connection mid-call") from None
            if exc.code == mcp_types.REQUEST_TIMEOUT:
                raise TimeoutError(f"MCP server {self.name!r}: {tool} timed out") from None
            raise ToolInputError(f"MCP server {self.name!r} refused {tool}: {exc.message}") from None
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, anyio.EndOfStream, OSError) as exc:
            await self._broken(session)
            raise McpServerUnavailable(f"MCP server {self.name!r} went away mid-call ({type(exc).__name__})") from None
        text = render_result(result)
        if result.is_error:
            raise ToolInputError(text or f"{tool} failed")
        return text

    async def _broken(self, session: ClientSession) -> None:
        async with self._lock:
            if self._session is session:
                self._session = None
                await self._shutdown_owner()

    async def _shutdown_owner(self) -> None:
        owner, closing = self._owner, self._closing
        self._owner = self._closing = None
        if owner is None or closing is None:
            return
        closing.set()
        try:
            await asyncio.wait_for(owner, 10)
        except BaseException:
            log.warning("MCP server %s did not close in time", self.name)

    async def close(self) -> None:
        """End the session (and a stdio server's process)."""
        async with self._lock:
            self._session = None
            await self._shutdown_owner()


def _meta(idempotency_key: str) -> mcp_types.RequestParamsMeta:
    """The request's `_meta`: an open mapping, so the key rides beside the protocol's reserved keys."""
    meta: Any = {IDEMPOTENCY_META_KEY: idempotency_key}
    return cast(mcp_types.RequestParamsMeta, meta)


async def _list_all(session: ClientSession) -> list[mcp_types.Tool]:
    tools: list[mcp_types.Tool] = []
    cursor: str | None = None
    while True:
        params = mcp_types.PaginatedRequestParams(cursor=cursor) if cursor else None
        page = await session.list_tools(params=params)
        tools += page.tools
        cursor = page.next_cursor
        if not cursor:
            return tools


def render_result(result: mcp_types.CallToolResult) -> str:
    """Text content, then structured content as JSON unless it only repeats the text."""
    parts = []
    for block in result.content:
        if isinstance(block, mcp_types.TextContent):
            parts.append(block.text)
        else:
            parts.append(f"[{block.type} content: {getattr(block, 'mime_type', None) or getattr(block, 'uri', '')}]")
    text = "\n".join(parts)
    structured = result.structured_content
    if structured is not None and structured != {"result": text}:
        rendered = json.dumps(structured, sort_keys=True)
        if rendered != text and json.dumps(_loads(text), sort_keys=True) != rendered:
            text = f"{text}\n{rendered}" if text else rendered
    return text


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def registry_tools(server: McpServer, listed: list[mcp_types.Tool]) -> list[Tool]:
    """The registry's view of a server's tools: `<server>__<tool>`, its input schema, the server table's policy."""
    config = server.config
    _warn_untrusted_hints(server.name, config, listed)
    tools = []
    for item in listed:
        read = matches(item.name, config.read_tools)
        if config.approval_tools is not None:
            approval = matches(item.name, config.approval_tools)
        else:
            approval = not read
        tools.append(
            Tool(
                name=f"{server.name}{SEPARATOR}{item.name}",
                description=item.description or item.title or item.name,
                handler=_handler(server, item.name),
                effect="read" if read else "write",
                requires_approval=approval,
                timeout=timedelta(seconds=config.timeout_seconds),
                retry=default_retry(config.max_attempts),
                schema=dict(item.input_schema),
                source=f"mcp:{server.name}",
            )
        )
    return tools


def _warn_untrusted_hints(server: str, config: McpServerConfig, listed: list[mcp_types.Tool]) -> None:
    """One warning line naming the tools the server calls read-only that `read_tools` does not list."""
    hinted = [t.name for t in listed if t.annotations and t.annotations.read_only_hint]
    untrusted = [name for name in hinted if not matches(name, config.read_tools)]
    if untrusted:
        log.warning(
            "MCP server %s annotates %s readOnlyHint, but its read_tools does not list them: they count as write "
            "tools (approval needed unless approval_tools says otherwise); to trust them, add them to "
            "read_tools in [mcp_servers.%s]",
            server,
            visible(", ".join(untrusted), multiline=False),  # the names come from the server: no control characters
            server,
        )


def _handler(server: McpServer, tool: str) -> Any:
    async def handler(args: dict[str, Any], deps: Any, call: CallInfo) -> str:
        return await server.call(tool, args, call.idempotency_key)

    handler.__doc__ = f"Calls {tool} on MCP server {server.name}."
    return handler


class McpManager:
    """Every MCP server of one worker process: started together at load, closed together at shutdown."""

    def __init__(self, servers: list[McpServer] | None = None) -> None:
        self.servers = {s.name: s for s in servers or []}
        self.tools: dict[str, list[Tool]] = {}
        """Registry tools of each server that started."""

    async def start(self) -> dict[str, str]:
        """Start every server concurrently; the problems of those that did not start or list tools, by name."""
        names = list(self.servers)
        outcomes = await asyncio.gather(*(self.servers[n].start() for n in names), return_exceptions=True)
        problems: dict[str, str] = {}
        for name, outcome in zip(names, outcomes):
            if isinstance(outcome, BaseException):
                server = self.servers[name]
                started = f"command {server.config.command}" if server.config.command else f"url {server.config.url}"
                problems[name] = f"({started}) " + describe_start_failure(outcome, server.config, server.folder)
            else:
                self.tools[name] = registry_tools(self.servers[name], outcome)
        return problems

    async def close(self) -> None:
        """Close every session; a stdio server's process ends with its session."""
        await asyncio.gather(*(s.close() for s in self.servers.values()), return_exceptions=True)
