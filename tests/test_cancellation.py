"""Cancellation at every point of a run, end to end on the dev server, from the SDK and the `temporal` CLI.

Each test cancels while the run awaits something (a model call, a tool call, a black box, a fan-out, an
approval, a hybrid stage, a later generation) and checks what a cancel promises: the run
closes Canceled within seconds, the in-flight activity is cancelled, the fake model gets no request after
the cancel, `AgentStatus` and the `status` query say `cancelled` with the usage spent.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import CancelledError
from temporalio.worker import Worker

from config.settings import Settings
from devstack.fake_anthropic import Reply
from service.plugin import AgentServicePlugin, worker_client
from tests.conftest import workflow_id
from tests.helpers import event_types, eventually, pending_approvals
from tests.test_approval import NOTE, cli, notes
from tests.test_archive import archived
from tools.catalog import REGISTRY
from tools.registry import CallInfo, Registry, Tool

CLOSES_WITHIN = 10.0
"""Seconds from the cancel request to the run's close (heartbeats carry the cancel in ~1-4 s)."""
CLAUDE_MODEL = "anthropic:claude-sonnet-5-5"


async def start(client, queue: str, workflow: str, payload: dict) -> WorkflowHandle:
    return await client.start_workflow(workflow, payload, id=workflow_id("cancel"), task_queue=queue)


async def requests_reach(fake, count: int) -> None:
    """Until the fake model has received `count` requests (the call is in flight)."""
    await eventually(lambda: len(fake.requests) >= count, timeout=20)


async def cancel_and_check_closed(
    handle: WorkflowHandle, cancel: Callable[[], Awaitable[object]], fake
) -> tuple[float, dict]:
    """Cancel, wait for the close; the run is Canceled, says so everywhere, and nothing was asked of the model after."""
    sent = len(fake.requests)
    began = time.monotonic()
    await cancel()
    with pytest.raises(WorkflowFailureError) as closed:
        await asyncio.wait_for(handle.result(), CLOSES_WITHIN + 5)
    took = time.monotonic() - began
    assert isinstance(closed.value.cause, CancelledError), closed.value.cause
    assert took < CLOSES_WITHIN, f"closed {took:.1f}s after the cancel"
    description = await handle.describe()
    assert description.status == WorkflowExecutionStatus.CANCELED
    attributes = {p.key.name: p.value for p in description.typed_search_attributes}
    assert attributes["AgentStatus"] == "cancelled"
    status = await handle.query("status")  # answered after the close by the polling worker
    assert status["state"] == "cancelled" and status["pending_approvals"] == []
    assert len(fake.requests) == sent, "the model was called after the cancel"
    assert "WORKFLOW_TASK_FAILED" not in await event_types(handle)
    return took, status


def archived_status(blob_dir, handle: WorkflowHandle) -> str:
    """The status the run's archive records (its document and its sidecar must agree)."""
    document, annotations = archived(blob_dir, handle)
    assert document["status"] == annotations["status"]
    return str(annotations["status"])


# --- a model call ---------------------------------------------------------------------------------


async def test_cancel_during_a_model_call_from_the_sdk(client, worker, fake_llm, blob_dir):
    fake_llm.push(Reply(tool_calls=[("calculator", {"expression": "6000 * 0.2"})]), Reply(text="late", delay=30))
    handle = await start(client, worker.task_queue, "AgentLoopWorkflow", {"prompt": "calculate"})
    await requests_reach(fake_llm, 2)  # the second model call is in flight
    _, status = await cancel_and_check_closed(handle, handle.cancel, fake_llm)
    assert status["usage"]["llm_calls"] == 1 and status["usage"]["tool_calls"] == 1
    events = await event_types(handle)
    assert "ACTIVITY_TASK_CANCEL_REQUESTED" in events
    assert archived_status(blob_dir, handle) == "cancelled"


# --- a tool call ----------------------------------------------------------------------------------


class SlowTools:
    """`calculator` replaced by a handler that blocks until cancelled, to cancel a run mid tool call."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()

    async def handler(self, args: object, deps: object, call: CallInfo) -> str:
        self.started.set()
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        return "never"

    def registry(self) -> Registry:
        from tools.catalog import build_registry

        registry = build_registry()
        registry.tools["calculator"] = Tool(
            name="calculator",
            description="slow",
            args=REGISTRY.tools["calculator"].args,
            handler=self.handler,
            effect="read",
        )
        return registry


@pytest.fixture
async def slow_worker(client, settings):
    slow = SlowTools()
    worker = Worker(
        worker_client(client),
        task_queue=settings.task_queue,
        plugins=[AgentServicePlugin(settings, slow.registry())],  # run_tool runs the slow calculator
        max_heartbeat_throttle_interval=timedelta(seconds=1),  # as worker.build_worker sets it
    )
    async with worker:
        yield settings, slow


async def test_cancel_during_a_tool_call_from_the_cli(client, slow_worker, fake_llm, dev_server):
    settings, slow = slow_worker
    fake_llm.push(Reply(tool_calls=[("calculator", {"expression": "1 + 1"})]))  # no second reply: none is asked for
    handle = await start(client, settings.task_queue, "AgentLoopWorkflow", {"prompt": "calculate"})
    await asyncio.wait_for(slow.started.wait(), 20)
    cancel = ["workflow", "cancel", "--address", dev_server.address, "--workflow-id", handle.id]
    _, status = await cancel_and_check_closed(handle, lambda: cli(*cancel), fake_llm)
    assert slow.cancelled.is_set(), "the tool's handler never saw the cancellation"
    events = await event_types(handle)
    assert "ACTIVITY_TASK_CANCELED" in events  # the run waited for run_tool to acknowledge
    assert status["usage"]["llm_calls"] == 1 and status["usage"]["tool_calls"] == 0
    fake_llm.assert_script_consumed()


# --- an approval wait -----------------------------------------------------------------------------


async def test_cancel_during_an_approval_wait_writes_no_note(client, worker, fake_llm, dev_server):
    fake_llm.push(Reply(tool_calls=[("write_note", NOTE)]))
    handle = await start(client, worker.task_queue, "AgentLoopWorkflow", {"prompt": "save 1200"})
    await pending_approvals(handle)
    cancel = ["workflow", "cancel", "--address", dev_server.address, "--workflow-id", handle.id]
    _, status = await cancel_and_check_closed(handle, lambda: cli(*cancel), fake_llm)
    assert notes(worker) == []
    assert status["waiting_for"] is None and status["usage"]["llm_calls"] == 1
    fake_llm.assert_script_consumed()


async def test_cancel_during_an_approval_wait_from_the_sdk(client, worker, fake_llm, blob_dir):
    fake_llm.push(Reply(tool_calls=[("write_note", NOTE)]))
    handle = await start(client, worker.task_queue, "AgentLoopWorkflow", {"prompt": "save 1200"})
    await pending_approvals(handle)
    await cancel_and_check_closed(handle, handle.cancel, fake_llm)
    assert notes(worker) == []
    assert archived_status(blob_dir, handle) == "cancelled"


# --- black boxes ----------------------------------------------------------------------------------


async def test_cancel_during_a_black_box(client, worker, fake_llm):
    fake_llm.push(Reply(text="late", delay=30))
    payload = {"agent": "analysis", "prompt": "1000/month, 10y, 5%", "model": CLAUDE_MODEL}
    handle = await start(client, worker.task_queue, "BlackBoxAgentWorkflow", payload)
    await requests_reach(fake_llm, 1)
    await cancel_and_check_closed(handle, handle.cancel, fake_llm)
    assert "ACTIVITY_TASK_CANCELED" in await event_types(handle)  # the engine saw the cancellation


async def test_cancel_during_a_fan_out(client, worker, fake_llm):
    fake_llm.push(Reply(text="late", delay=30), Reply(text="late", delay=30))
    steps = [{"agent": "budget", "prompt": "I earn 5000."}, {"agent": "analysis", "prompt": "1000/month, 10y, 5%"}]
    payload = {"prompt": "plan", "model": CLAUDE_MODEL, "steps": steps, "parallel": True}
    handle = await start(client, worker.task_queue, "BlackBoxAgentWorkflow", payload)
    await requests_reach(fake_llm, 2)
    await cancel_and_check_closed(handle, handle.cancel, fake_llm)
    assert (await event_types(handle)).count("ACTIVITY_TASK_CANCELED") == 2


# --- a hybrid stage -------------------------------------------------------------------------------


async def test_cancel_during_the_hybrids_planning(client, worker, fake_llm):
    fake_llm.push(Reply(text="late", delay=30))
    handle = await start(client, worker.task_queue, "HybridAgentWorkflow", {"prompt": "plan my money"})
    await requests_reach(fake_llm, 1)
    await cancel_and_check_closed(handle, handle.cancel, fake_llm)
    assert not Path(worker.notify_outbox).exists(), "stage 5 notified after the cancel"


# --- a later generation ---------------------------------------------------------------------------


async def test_cancel_in_a_later_generation(client, settings, fake_llm, monkeypatch):
    monkeypatch.setenv("HISTORY_MAX_EVENTS", "100")  # a new generation every few steps
    hold = threading.Event()
    counter = iter(range(10**6))

    def respond(body: dict) -> Reply:
        if hold.is_set():  # from now on a model call hangs: the run is cancelled while it waits
            return Reply(text="late", delay=30)
        return Reply(tool_calls=[("calculator", {"expression": f"{next(counter)} + 1"})])

    fake_llm.responder = respond
    from worker import build_worker

    async with build_worker(client, Settings.from_env()):
        handle = await client.start_workflow(
            "AgentLoopWorkflow",
            {"prompt": "count", "budget": {"max_steps": 10_000, "max_tokens": 10**9, "max_cost_usd": 1000.0}},
            id=workflow_id("cancel-generation"),
            task_queue=settings.task_queue,
        )
        latest = client.get_workflow_handle(handle.id)
        first_run = handle.first_execution_run_id or handle.run_id

        async def later_generation() -> bool:
            return (await latest.describe()).run_id != first_run

        await eventually(later_generation, timeout=60)
        hold.set()
        await requests_reach(fake_llm, len(fake_llm.requests) + 1)  # a call made after `hold`: it hangs
        _, status = await cancel_and_check_closed(latest, latest.cancel, fake_llm)
        assert status["usage"]["llm_calls"] >= 2
        assert (await latest.describe()).run_id != first_run
