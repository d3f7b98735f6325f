"""Scaling out on Temporal itself: worker processes on one task queue share the runs and survive losing one.

Three `python worker.py` processes poll the session dev server; 30 agent loops run at once
(model → calculator → model, each model call ~2 s); the worker with the most calls in flight is
SIGKILLed. Every run must complete once with the right answer, only the calls that died with the
worker may be sent again, and the histories must show the work spread over the workers.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections import Counter

from temporalio.api.enums.v1 import PendingActivityState

from devstack.fake_anthropic import Reply
from tests.helpers import eventually

RUNS = 30
WORKERS = 3
CALL_SECONDS = 2.0


def prompt_of(body: dict) -> str:
    """The run's prompt: the first user message's text."""
    content = body["messages"][0]["content"]
    return content if isinstance(content, str) else " ".join(b.get("text", "") for b in content)


def tool_result_text(body: dict) -> str:
    """The text of the tool_result blocks in the last message."""
    parts = []
    for block in body["messages"][-1]["content"]:
        if isinstance(block, dict) and block.get("type") == "tool_result":
            content = block.get("content")
            parts.append(content if isinstance(content, str) else " ".join(c.get("text", "") for c in content or []))
    return " ".join(parts)


def responder(body: dict) -> Reply:
    """Turn 1: ask the calculator for n * 7. Turn 2: answer with what the tool returned."""
    n = int(re.search(r"What is (\d+) \* 7", prompt_of(body)).group(1))
    if len(body["messages"]) == 1:
        return Reply(tool_calls=[("calculator", {"expression": f"{n} * 7"})], delay=CALL_SECONDS)
    if str(n * 7) not in tool_result_text(body):  # the run's output then shows the calculator went wrong
        return Reply(text=f"tool result was {tool_result_text(body)!r}")
    return Reply(text=f"{n} * 7 = {n * 7}", delay=CALL_SECONDS)


async def calls_in_flight(handles) -> Counter:
    """Started, unfinished activities per worker identity, from the server's view of each run."""
    counts: Counter = Counter()
    for description in await asyncio.gather(*(h.describe() for h in handles)):
        for activity in description.raw_description.pending_activities:
            if activity.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED and activity.last_worker_identity:
                counts[activity.last_worker_identity] += 1
    return counts


async def llm_attempts(handles) -> Counter:
    """Attempts of each run's `call_llm` activities, keyed like the fake's requests: (prompt, messages sent)."""
    attempts: Counter = Counter()
    for handle, history in zip(handles, await asyncio.gather(*(h.fetch_history() for h in handles))):
        prompt = f"What is {handle.id.rsplit('-', 1)[1]} * 7?"
        scheduled = [
            e.event_id
            for e in history.events
            if e.activity_task_scheduled_event_attributes.activity_type.name == "call_llm"
        ]
        for step, event_id in enumerate(scheduled):
            started = [
                e.activity_task_started_event_attributes.attempt
                for e in history.events
                if e.activity_task_started_event_attributes.scheduled_event_id == event_id
            ]
            attempts[(prompt, 1 + 2 * step)] = max(started)  # messages sent: the prompt, then two per round
    return attempts


async def history_identities(handles) -> tuple[Counter, Counter]:
    """(activity attempts, workflow tasks) completed per worker identity, read from the event histories."""
    activities: Counter = Counter()
    workflow_tasks: Counter = Counter()
    for history in await asyncio.gather(*(h.fetch_history() for h in handles)):
        for event in history.events:
            if event.HasField("activity_task_started_event_attributes"):
                activities[event.activity_task_started_event_attributes.identity] += 1
            elif event.HasField("workflow_task_completed_event_attributes"):
                workflow_tasks[event.workflow_task_completed_event_attributes.identity] += 1
    return activities, workflow_tasks


async def test_three_workers_share_30_runs_and_survive_a_sigkill(client, fake_llm, settings, worker_processes):
    fake_llm.responder = responder
    workers = {f"worker-{i}": worker_processes(WORKER_IDENTITY=f"worker-{i}") for i in range(WORKERS)}
    prefix = f"scale-{uuid.uuid4().hex[:6]}"
    handles = await asyncio.gather(
        *(
            client.start_workflow(
                "AgentLoopWorkflow", {"prompt": f"What is {n} * 7?"}, id=f"{prefix}-{n}", task_queue=settings.task_queue
            )
            for n in range(RUNS)
        )
    )

    # Mid-way: every first model call has been answered and second calls are in flight.
    async def victim_with_work() -> str | None:
        if sum(r.served == "reply" for r in fake_llm.requests) < RUNS:
            return None
        in_flight = await calls_in_flight(handles)
        return in_flight.most_common(1)[0][0] if in_flight else None

    victim = await eventually(victim_with_work, timeout=60, interval=0.2)
    workers[victim].kill()

    results = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), timeout=120)

    # Every run completed, with the right answer, in its three steps. Its usage counts its two model
    # calls, plus a reply the fake served to an attempt that died after recording it (heartbeat
    # details carry what an attempt was billed for): never more than the replies the fake served it.
    served = Counter(prompt_of(r.body) for r in fake_llm.requests if r.served == "reply")
    for n, result in enumerate(results):
        assert result["status"] == "completed", result
        assert result["output"] == f"{n} * 7 = {n * 7}"
        assert (result["usage"]["tool_calls"], result["steps"]) == (1, 3)
        assert 2 <= result["usage"]["llm_calls"] <= served[f"What is {n} * 7?"], (result["usage"], served)
    # None twice: one run per workflow id ...
    listed = await eventually(lambda: _list_runs(client, prefix), timeout=20)
    assert sorted(listed) == sorted(h.id for h in handles)
    # ... and a model call was sent again only when its activity's first attempt died with the worker
    # (the reply may have been served, but the completion never reached Temporal; or the attempt died
    # before sending): no call was sent more often than Temporal attempted its activity, so no completed
    # call was ever repeated.
    sent = Counter((prompt_of(r.body), len(r.messages)) for r in fake_llm.requests)
    assert len(sent) == 2 * RUNS and all(count <= 2 for count in sent.values())
    attempts = await llm_attempts(handles)
    assert set(sent) == set(attempts)
    over = {key: (count, attempts[key]) for key, count in sent.items() if count > attempts[key]}
    assert not over, f"calls sent more often than their activity was attempted: {over}"

    # The histories show the work spread over the workers, and the survivors finishing the victim's.
    activities, workflow_tasks = await history_identities(handles)
    assert set(activities) <= set(workers) and set(workflow_tasks) <= set(workers)
    assert len(activities) >= 2, f"activities ran on one worker only: {activities}"
    assert len(set(activities) | set(workflow_tasks)) == WORKERS, (activities, workflow_tasks)
    # One started attempt recorded per regular activity: two call_llm per run (the calculator runs as a local
    # activity inside a workflow task, a marker rather than a started event).
    assert sum(activities.values()) == 2 * RUNS


async def _list_runs(client, prefix: str) -> list[str] | None:
    """Workflow ids of every run whose id starts with `prefix` (None until all are visible)."""
    ids = [w.id async for w in client.list_workflows(f'WorkflowId STARTS_WITH "{prefix}-"')]
    return ids if len(ids) >= RUNS else None
