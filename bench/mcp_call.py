"""What one MCP tool call costs as a `run_tool` activity, against the same call made in-process.

    .venv/bin/python bench/mcp_call.py                # --calls 50 --rounds 5 (~30 s)

Three ways to call `lookup_order` on the same stdio MCP server (tests/fixtures/crm_mcp_server.py):

- `mcp client`: a bare `mcp.ClientSession` over `stdio_client`, in this process: the floor;
- `product session`: the worker's own session (`tools.mcp_servers.McpServer.call`: idempotency key in
  `_meta`, error mapping), in this process;
- `run_tool activity`: a workflow calling `run_tool` for the registry's `crm__lookup_order`, as pattern B
  does for every MCP call (validation, tool span, heartbeating, the server round trips), on a dev server
  this script starts, with the product's worker options.

Rounds interleave the three, so the machine's noise lands on all of them; medians per call are reported
with the ratio to the bare client. Not a pytest test; exit status 0 unless a call fails.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

if __name__ == "__main__":  # runnable from anywhere: the repo root holds the packages
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from temporalio import workflow

from models.conversation import ToolCall
from models.tooling import ToolInvocation
from workflows import activity_options, calls

ROOT = Path(__file__).resolve().parents[1]
SERVER = ROOT / "tests" / "fixtures" / "crm_mcp_server.py"
ARGS = {"order_id": "A1"}


@workflow.defn(name="BenchMcpCallsWorkflow")
class BenchMcpCallsWorkflow:
    """`n` sequential `run_tool` activities for one MCP tool; returns nothing (the time is the answer)."""

    @workflow.run
    async def run(self, n: int) -> int:
        options = activity_options.tool_options(
            timedelta(seconds=20), activity_options.RUN_TOOL.retry_policy or _retry()
        )
        for i in range(n):
            invocation = ToolInvocation(
                agent="bench",
                call=ToolCall(id=f"c{i}", name="crm__lookup_order", arguments=ARGS),
                idempotency_key=f"{workflow.info().workflow_id}:{i}",
            )
            outcome = await calls.run_tool(invocation, options, summary="bench: crm__lookup_order")
            assert not outcome.is_error, outcome.content
        return n


def _retry():
    from temporalio.common import RetryPolicy

    return RetryPolicy(maximum_attempts=3)


async def bare_client_calls(n: int) -> float:
    """Seconds per call with the `mcp` package's own client, nothing else."""
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(command=sys.executable, args=[str(SERVER)], env={**os.environ})
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        await session.call_tool("lookup_order", ARGS)  # warm
        started = time.perf_counter()
        for _ in range(n):
            result = await session.call_tool("lookup_order", ARGS)
            assert not result.is_error
        return (time.perf_counter() - started) / n


async def product_session_calls(server, n: int) -> float:
    """Seconds per call through the worker's session wrapper (the handler a `run_tool` runs)."""
    started = time.perf_counter()
    for i in range(n):
        await server.call("lookup_order", ARGS, f"bench:{i}")
    return (time.perf_counter() - started) / n


async def activity_calls(client, task_queue: str, n: int) -> float:
    """Seconds per call as `run_tool` activities of one workflow (its start and end excluded by a warm-up)."""
    started = time.perf_counter()
    await client.execute_workflow(
        BenchMcpCallsWorkflow.run, n, id=f"bench-mcp-{uuid.uuid4().hex[:8]}", task_queue=task_queue
    )
    return (time.perf_counter() - started) / n


async def main(args: argparse.Namespace) -> int:
    from temporalio.worker import UnsandboxedWorkflowRunner, Worker

    from config.settings import Settings
    from devstack.dev_server import free_port, start_dev_server
    from service.connect import connect
    from service.plugin import AgentServicePlugin, worker_client
    from tools.loader import load_registry

    root = Path(tempfile.mkdtemp(prefix="bench-mcp-"))
    agents = root / "agents.toml"
    agents.write_text(
        f'[agents.bench]\ninstructions = "bench"\ntools = ["mcp:crm"]\n\n'
        f'[mcp_servers.crm]\ncommand = ["{sys.executable}", "{SERVER}"]\nenv = {{ CRM_DB = "{root / "crm.db"}" }}\n'
    )
    os.environ.update(
        AGENTS_FILE=str(agents),
        BLOB_STORE_DIR=str(root / "blobs"),
        TEMPORAL_TASK_QUEUE=f"bench-mcp-{uuid.uuid4().hex[:6]}",
        NOTES_DB=str(root / "notes.db"),
    )
    settings = Settings.from_env()
    server = start_dev_server(port=free_port(), ui_port=None, db_file=str(root / "dev.db"))
    loaded = await load_registry(settings)
    try:
        client = await connect(settings, target_host=server.address)
        worker = Worker(
            worker_client(client),
            task_queue=settings.task_queue,
            plugins=[AgentServicePlugin(settings, loaded.registry)],
            workflows=[BenchMcpCallsWorkflow],
            workflow_runner=UnsandboxedWorkflowRunner(),  # a script-defined workflow cannot be sandboxed
            max_concurrent_activities=settings.max_concurrent_activities,
        )
        async with worker:
            await activity_calls(client, settings.task_queue, 3)  # warm: server, worker, session
            product = loaded.mcp.servers["crm"]
            results: dict[str, list[float]] = {"mcp client": [], "product session": [], "run_tool activity": []}
            for _ in range(args.rounds):
                results["mcp client"].append(await bare_client_calls(args.calls))
                results["product session"].append(await product_session_calls(product, args.calls))
                results["run_tool activity"].append(await activity_calls(client, settings.task_queue, args.calls))
        floor = statistics.median(results["mcp client"])
        print(f"one MCP tool call (lookup_order over stdio), {args.calls} calls x {args.rounds} interleaved rounds")
        for name, samples in results.items():
            median = statistics.median(samples)
            spread = f"{min(samples) * 1000:.2f}-{max(samples) * 1000:.2f}"
            print(
                f"  {name:<18} {median * 1000:7.2f} ms/call (rounds {spread})  {median / floor:5.1f}x the bare client"
            )
        extra = statistics.median(results["run_tool activity"]) - statistics.median(results["product session"])
        print(f"  durability cost of one MCP call as an activity: {extra * 1000:.2f} ms")
    finally:
        await loaded.close()
        server.stop()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    code = asyncio.run(main(parser.parse_args()))
    sys.stdout.flush()
    os._exit(code)  # sdk-python#300: an SDK process can abort at interpreter exit
