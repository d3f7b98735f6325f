"""The one tool executor: `retry` (run_tool) raises for Temporal, `report` (black boxes) answers the model."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from pydantic import BaseModel
from temporalio.exceptions import ApplicationError

from activities.tool_executor import ToolExecutor
from models.conversation import ToolCall
from models.errors import ToolInputError
from tools.catalog import build_registry
from tools.deps import ToolDeps
from tools.notes import NoteStore
from tools.registry import AgentProfile, CallInfo, Registry, Tool


class NoArgs(BaseModel):
    """No arguments."""


async def _broken(args: NoArgs, deps: ToolDeps, call: CallInfo) -> str:
    raise RuntimeError("disk on fire")


async def _misused(args: NoArgs, deps: ToolDeps, call: CallInfo) -> str:
    raise ToolInputError("no such record")


async def _slow(args: NoArgs, deps: ToolDeps, call: CallInfo) -> str:
    await asyncio.sleep(5)
    return "late"


@pytest.fixture
def registry() -> Registry:
    """The built-in registry plus three misbehaving tools and an agent allowed all of them."""
    registry = build_registry()
    registry.add_tool(Tool(name="broken", description="fails", args=NoArgs, handler=_broken, effect="read"))
    registry.add_tool(Tool(name="misused", description="refuses", args=NoArgs, handler=_misused, effect="read"))
    registry.add_tool(
        Tool(
            name="slow", description="hangs", args=NoArgs, handler=_slow, effect="read", timeout=timedelta(seconds=0.05)
        )
    )
    registry.add_agent(
        AgentProfile(name="tester", instructions="", tools=("broken", "misused", "slow", "calculator", "write_note"))
    )
    return registry


@pytest.fixture
def executor(registry, tmp_path) -> ToolExecutor:
    """An executor with a notes file of this test's own."""
    return ToolExecutor(registry, ToolDeps(notes=NoteStore(str(tmp_path / "notes.db"))))


def _call(name: str, **arguments) -> ToolCall:
    return ToolCall(id="call_1", name=name, arguments=arguments)


async def test_retry_mode_raises_handler_failures_for_temporal(executor):
    with pytest.raises(ApplicationError) as failed:
        await executor.run(_call("broken"), idempotency_key="k", on_failure="retry")
    assert failed.value.type == "ToolFailed" and not failed.value.non_retryable
    assert "tool broken failed: RuntimeError: disk on fire" in str(failed.value)
    with pytest.raises(ApplicationError) as unknown:
        await executor.run(_call("nope"), idempotency_key="k", on_failure="retry")
    assert unknown.value.type == "UnknownTool" and unknown.value.non_retryable


async def test_both_modes_give_tool_input_errors_to_the_model(executor, registry):
    agent = registry.agent("tester")
    for mode in ("retry", "report"):
        outcome = await executor.run(_call("misused"), idempotency_key="k", on_failure=mode, agent=agent)
        assert outcome.is_error and outcome.content == "Error: no such record"


async def test_report_mode_turns_every_failure_into_an_error_result(executor, registry):
    agent = registry.agent("tester")

    async def report(call: ToolCall) -> str:
        outcome = await executor.run(call, idempotency_key="k", on_failure="report", agent=agent)
        assert outcome.is_error and outcome.tool_call_id == "call_1"
        return outcome.content

    assert await report(_call("broken")) == "Error: tool broken failed: RuntimeError: disk on fire"
    assert await report(_call("slow")) == "Error: tool slow timed out after 0.05s"
    assert (await report(_call("nope"))).startswith("Error: Unknown tool 'nope'. Available tools: broken")
    assert "Invalid arguments for 'calculator'" in await report(_call("calculator"))
    assert "needs a person's approval" in await report(_call("write_note", title="a", body="b"))


async def test_handlers_get_the_workers_dependencies_and_the_calls_key(executor, registry):
    agent = registry.agent("assistant")
    outcome = await executor.run(
        _call("write_note", title="t", body="b"), idempotency_key="wf:step-1:call_1", on_failure="retry", agent=agent
    )
    assert outcome.content == "Saved note #1 't'." and not outcome.is_error
    again = await executor.run(
        _call("write_note", title="t", body="b"), idempotency_key="wf:step-1:call_1", on_failure="retry"
    )
    assert again.content == "Note #1 't' was already saved."
