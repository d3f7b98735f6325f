"""How one reply's tool calls run: which run as local activities, which run side by side. Pure decisions.

Local: a tool declared `read`, approval-free, from a Python module (not MCP: its session lives in
the worker's activity side) and short (timeout at most `LOCAL_TOOL_MAX_TIMEOUT`) runs as a local
activity inside the workflow task that scheduled it. It saves a server round trip (the activity's
completion and the workflow task it wakes) and its input never enters history; its result is
recorded as a marker. Local activities retry inside the worker with the tool's own retry policy;
a backoff longer than the SDK's `local_retry_threshold` (1 minute) becomes a workflow timer, and a
workflow task held by a running local activity is kept alive by the SDK (task heartbeats), so a
bound of 10 s keeps a dead worker's task from hiding a long local call. Everything else (writes,
approvals, MCP, long tools) stays a regular activity, visible and heartbeated on its own.

Side by side: consecutive calls that change nothing (reads without approval, and calls the
checks refuse) form one batch, run concurrently, at most `MAX_CONCURRENT_TOOL_CALLS` at a time;
every other call (a write, or a call that needs approval) runs alone, after the calls before it
and before the calls after it, so the model's order holds wherever it can matter. Results go back
in the model's order.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from models.conversation import ToolCall
    from tools.registry import AgentProfile, Registry, Tool

LOCAL_TOOL_MAX_TIMEOUT = timedelta(seconds=10)
"""The longest a tool may be declared to take and still run as a local activity."""
MAX_CONCURRENT_TOOL_CALLS = 8
"""At most this many read calls of one reply run at once."""
LOCAL_READ_TOOLS_PATCH = "local-read-tools"
"""Runs recorded before it ran every tool as a regular activity; they replay so."""
PARALLEL_TOOL_CALLS_PATCH = "parallel-tool-calls"
"""Runs recorded before it ran one reply's tool calls one by one; they replay so."""


def runs_locally(tool: Tool) -> bool:
    """Whether `tool` (the run's pinned copy) may run as a local activity: read, no approval, Python, short."""
    return (
        tool.effect == "read"
        and not tool.requires_approval
        and tool.source == "python"
        and tool.timeout <= LOCAL_TOOL_MAX_TIMEOUT
    )


def may_overlap(registry: Registry, agent: AgentProfile, call: ToolCall) -> bool:
    """Whether `call` changes nothing, so it may run beside its neighbours: a read without approval, or a refusal."""
    if call.name not in agent.tools or call.name not in registry.tools:
        return True  # refused by the checks: no activity, no effect
    tool = registry.tools[call.name]
    return tool.effect == "read" and not tool.requires_approval


def batches(calls: list[ToolCall], overlap: Callable[[ToolCall], bool]) -> list[list[ToolCall]]:
    """The calls in the model's order, cut into groups: consecutive overlapping calls together, every other alone."""
    groups: list[list[ToolCall]] = []
    for call in calls:
        if overlap(call) and groups and overlap(groups[-1][0]):
            groups[-1].append(call)
        else:
            groups.append([call])
    return groups
