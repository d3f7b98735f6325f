"""MCP servers as tools: real server processes (tests/fixtures/crm_mcp_server.py) over stdio and Streamable HTTP."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError

from activities.tool_executor import ToolExecutor
from models.conversation import ToolCall
from models.errors import ToolInputError
from tools.deps import ToolDeps
from tools.mcp_config import McpServerConfig
from tools.mcp_servers import McpManager, McpServer, McpServerUnavailable, registry_tools
from tools.notes import NoteStore
from tools.registry import Registry

FIXTURES = Path(__file__).parent / "fixtures"
SERVER = FIXTURES / "crm_mcp_server.py"


@pytest.fixture
def crm(tmp_path) -> dict[str, str]:
    """The environment the CRM server reads: its SQLite file and where it writes its pid."""
    return {"CRM_DB": str(tmp_path / "crm.db"), "CRM_PID_FILE": str(tmp_path / "crm.pid")}


@pytest.fixture
async def stdio_server(crm, tmp_path):
    """A started stdio session to the CRM server; closed (and the process gone) after the test."""
    config = McpServerConfig(
        command=[sys.executable, str(SERVER)],
        env={"CRM_DB": "${CRM_DB}", "CRM_PID_FILE": "${CRM_PID_FILE}"},
        approval_tools=["refund_*"],
        timeout_seconds=20,
    )
    server = McpServer("crm", config, tmp_path, crm)
    listed = await server.start()
    yield server, listed
    await server.close()


def _refunds(db: str) -> list[tuple[str, str, float]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT * FROM refunds ORDER BY idempotency_key").fetchall()


def _pids(crm: dict[str, str]) -> list[int]:
    return [int(line) for line in Path(crm["CRM_PID_FILE"]).read_text().split()]


async def test_stdio_tools_are_listed_with_their_policy(stdio_server):
    server, listed = stdio_server
    tools = {t.name: t for t in registry_tools(server, listed)}
    assert sorted(tools) == ["crm__lookup_order", "crm__refund_order", "crm__slow_lookup", "crm__slow_refund"]
    lookup, refund = tools["crm__lookup_order"], tools["crm__refund_order"]
    assert lookup.effect == "write"  # annotated readOnlyHint, but read_tools does not list it: not trusted
    assert not lookup.requires_approval  # approval_tools names only refund_*
    assert refund.effect == "write" and refund.requires_approval
    assert refund.source == "mcp:crm" and refund.args is None
    assert refund.input_schema()["required"] == ["order_id", "amount"]
    assert lookup.description == "Look up one order: its status and total."
    assert refund.timeout.total_seconds() == 20


async def test_call_returns_text_and_passes_the_idempotency_key_in_meta(stdio_server, crm):
    server, _ = stdio_server
    assert await server.call("lookup_order", {"order_id": "A1"}, "k0") == (
        '{"order_id": "A1", "status": "shipped", "total": 42.5}'
    )
    first = await server.call("refund_order", {"order_id": "A1", "amount": 5}, "wf:3:call_1")
    again = await server.call("refund_order", {"order_id": "A1", "amount": 5}, "wf:3:call_1")
    other = await server.call("refund_order", {"order_id": "B2", "amount": 1}, "wf:4:call_1")
    assert '"new": true' in first and '"new": false' in again and '"new": true' in other
    assert _refunds(crm["CRM_DB"]) == [("wf:3:call_1", "A1", 5.0), ("wf:4:call_1", "B2", 1.0)]


async def test_error_result_is_a_tool_input_error(stdio_server):
    server, _ = stdio_server
    with pytest.raises(ToolInputError, match="no order 'ZZ'"):
        await server.call("lookup_order", {"order_id": "ZZ"}, "k")


async def test_server_killed_mid_call_fails_retryably_and_the_session_reopens(stdio_server, crm):
    server, _ = stdio_server
    [pid] = _pids(crm)
    call = asyncio.create_task(server.call("slow_lookup", {"seconds": 30}, "k"))
    await asyncio.sleep(0.5)
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(McpServerUnavailable, match="mid-call"):
        await asyncio.wait_for(call, 10)
    assert "shipped" in await server.call("lookup_order", {"order_id": "A1"}, "k")
    assert len(_pids(crm)) == 2 and _pids(crm)[1] != pid


async def test_run_tool_retries_a_call_whose_server_died(stdio_server, crm, tmp_path):
    server, listed = stdio_server
    registry = Registry()
    for declared in registry_tools(server, listed):
        registry.add_tool(declared)
    executor = ToolExecutor(registry, ToolDeps(notes=NoteStore(str(tmp_path / "notes.db"))))
    call = ToolCall(id="c1", name="crm__slow_lookup", arguments={"seconds": 30})
    running = asyncio.create_task(executor.run(call, idempotency_key="wf:1:c1", on_failure="retry"))
    await asyncio.sleep(0.5)
    os.kill(_pids(crm)[0], signal.SIGKILL)
    with pytest.raises(ApplicationError) as failed:
        await asyncio.wait_for(running, 10)
    assert failed.value.type == "ToolFailed" and not failed.value.non_retryable
    refund = ToolCall(id="c2", name="crm__refund_order", arguments={"order_id": "A1", "amount": 2})
    outcome = await executor.run(refund, idempotency_key="wf:1:c2", on_failure="retry")
    assert not outcome.is_error and '"new": true' in outcome.content
    assert _refunds(crm["CRM_DB"]) == [("wf:1:c2", "A1", 2.0)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def http_server(crm):
    """The CRM server on Streamable HTTP, 127.0.0.1 and a free port; its URL."""
    port = _free_port()
    process = subprocess.Popen([sys.executable, str(SERVER), "--http", str(port)], env={**os.environ, **crm})
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            time.sleep(0.1)
    yield f"http://127.0.0.1:{port}/mcp"
    process.terminate()
    process.wait(10)


async def test_streamable_http_lists_and_calls(http_server, crm, tmp_path):
    config = McpServerConfig(url=http_server, headers={"Authorization": "Bearer ${CRM_TOKEN}"}, read_tools=["lookup_*"])
    manager = McpManager([McpServer("crm_http", config, tmp_path, {"CRM_TOKEN": "t0ken"})])
    assert await manager.start() == {}
    try:
        tools = {t.name: t for t in manager.tools["crm_http"]}
        assert tools["crm_http__lookup_order"].effect == "read"
        assert tools["crm_http__slow_lookup"].effect == "write"  # read_tools replaces the annotations
        assert tools["crm_http__slow_lookup"].requires_approval
        server = manager.servers["crm_http"]
        assert "shipped" in await server.call("lookup_order", {"order_id": "A1"}, "k")
        assert '"new": true' in await server.call("refund_order", {"order_id": "A1", "amount": 3}, "h1")
        assert _refunds(crm["CRM_DB"]) == [("h1", "A1", 3.0)]
    finally:
        await manager.close()


async def test_unset_header_variable_is_a_start_problem(tmp_path):
    config = McpServerConfig(url="http://127.0.0.1:9/mcp", headers={"X-Key": "${NOT_SET_ANYWHERE}"})
    manager = McpManager([McpServer("api", config, tmp_path, {})])
    problems = await manager.start()
    assert "headers.X-Key uses ${NOT_SET_ANYWHERE}, which is not set" in problems["api"]


async def _loaded_policy(config: McpServerConfig, crm, tmp_path) -> dict[str, tuple[str, bool]]:
    """(effect, requires_approval) of each tool, as loading the server (McpManager.start) declares them."""
    manager = McpManager([McpServer("crm", config, tmp_path, crm)])
    assert await manager.start() == {}
    try:
        return {t.name: (t.effect, t.requires_approval) for t in manager.tools["crm"]}
    finally:
        await manager.close()


async def test_a_servers_read_only_hint_is_not_trusted_without_read_tools(crm, tmp_path, caplog):
    """The fixture server marks lookup_order and slow_lookup readOnlyHint: without read_tools every tool is a
    write tool that waits for approval, and loading says so in one line naming them and the fix."""
    config = McpServerConfig(command=[sys.executable, str(SERVER)], env={"CRM_DB": "${CRM_DB}"}, timeout_seconds=20)
    with caplog.at_level(logging.WARNING, logger="tools.mcp_servers"):
        policy = await _loaded_policy(config, crm, tmp_path)
    assert policy == {
        "crm__lookup_order": ("write", True),
        "crm__refund_order": ("write", True),
        "crm__slow_refund": ("write", True),
        "crm__slow_lookup": ("write", True),
    }
    [warning] = [r.getMessage() for r in caplog.records if "readOnlyHint" in r.getMessage()]
    assert warning.startswith("MCP server crm annotates lookup_order, slow_lookup readOnlyHint")
    assert "add them to read_tools in [mcp_servers.crm]" in warning and "\n" not in warning

    # Listed in read_tools, they are read tools needing no approval, and there is nothing to warn about.
    caplog.clear()
    trusting = config.model_copy(update={"read_tools": ["lookup_*", "slow_lookup"]})
    with caplog.at_level(logging.WARNING, logger="tools.mcp_servers"):
        policy = await _loaded_policy(trusting, crm, tmp_path)
    assert policy["crm__lookup_order"] == policy["crm__slow_lookup"] == ("read", False)
    assert policy["crm__refund_order"] == ("write", True)
    assert not [r for r in caplog.records if "readOnlyHint" in r.getMessage()]


def _interpreter_without_mcp(folder: Path) -> Path:
    """A `python` that is not the worker's: it exits at once, as one lacking the `mcp` package does."""
    program = folder / "bin" / "python"
    program.parent.mkdir()
    program.write_text("#!/bin/sh\necho \"ModuleNotFoundError: No module named 'mcp'\" >&2\nexit 1\n")
    program.chmod(0o755)
    return program


async def _start_problem(config: McpServerConfig, folder: Path) -> str:
    manager = McpManager([McpServer("crm", config, folder, {})])
    problems = await manager.start()
    await manager.close()
    return problems["crm"]


async def test_a_server_run_by_another_python_names_the_workers_interpreter(tmp_path):
    other = _interpreter_without_mcp(tmp_path)
    by_path = McpServerConfig(command=[str(other), str(SERVER)], timeout_seconds=20)
    problem = await _start_problem(by_path, tmp_path)
    assert "did not start: MCPError: Connection closed" in problem
    assert f"`{other}` is not this worker's interpreter {sys.executable}" in problem
    assert f'write command = ["{sys.executable}", ...] or put {Path(sys.executable).parent} first on PATH' in problem
    # Started by name, `python` is whatever the server's PATH finds first.
    by_name = McpServerConfig(command=["python", str(SERVER)], env={"PATH": str(other.parent)}, timeout_seconds=20)
    problem = await _start_problem(by_name, tmp_path)
    assert f"`python` is {other}, not this worker's interpreter {sys.executable}" in problem


async def test_a_missing_program_and_a_crashing_server_say_what_to_do(tmp_path):
    missing = await _start_problem(McpServerConfig(command=["no-such-server-program"], timeout_seconds=20), tmp_path)
    assert "`no-such-server-program` is not on the worker's PATH: give its full path" in missing
    crash = tmp_path / "crash.py"
    crash.write_text("raise SystemExit('the CRM database is missing')\n")
    crashed = await _start_problem(McpServerConfig(command=[sys.executable, str(crash)], timeout_seconds=20), tmp_path)
    assert f"the server exited before answering: run {sys.executable} {crash} yourself to see why" in crashed
