"""Load for bench/fairness.py: the fake model's record of each run's first call, and customer A's steady backlog."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

from devstack.fake_anthropic import Reply
from models.spend_limits import fairness

PREFIX = "fairness bench run"
A, B = "customer-a", "customer-b"
START_CONCURRENCY = 32  # A's start RPCs in flight at once


class Arrivals:
    """The fake model's responder: notes when each run's first request arrives, answers after `delay` s."""

    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.lock = threading.Lock()
        self.first: dict[str, float] = {}
        self.reached = {A: 0, B: 0}

    def respond(self, body: dict[str, Any]) -> Any:
        now = time.perf_counter()
        first = body["messages"][0]["content"]
        text = first if isinstance(first, str) else "".join(b.get("text", "") for b in first if isinstance(b, dict))
        tag = text.split(PREFIX, 1)[1].split()[0] if PREFIX in text else ""  # `customer-b/7`
        customer = tag.split("/")[0]
        with self.lock:
            if tag and tag not in self.first:
                self.first[tag] = now
                if customer in self.reached:
                    self.reached[customer] += 1
        return Reply(text="done", delay=self.delay if customer in self.reached else 0.0)


class Starter:
    """Starts runs as the gateway does: the customer's fairness key and weight from the SPEND_LIMITS file."""

    def __init__(self, client: Any, settings: Any, mode: str) -> None:
        self.client, self.settings, self.mode = client, settings, mode
        self.priority = {c: fairness(settings.spend_limits, c) for c in (A, B, "warm-up")}
        self.started = {A: 0, B: 0}
        self.issued = self.failed = 0
        self.gate = asyncio.Semaphore(START_CONCURRENCY)

    async def start(self, customer: str, n: int) -> Any:
        """Start run `n` of `customer` (AgentLoopWorkflow, one model call that answers `done`)."""
        tag = f"{customer}/{n}"
        handle = await self.client.start_workflow(
            "AgentLoopWorkflow",
            {"prompt": f"{PREFIX} {tag} (answer done)", "customer_id": customer},
            id=f"fairness-{self.mode}-{customer}-{n}",
            task_queue=self.settings.task_queue,
            priority=self.priority[customer],
        )
        if customer in self.started:
            self.started[customer] += 1
        return handle

    async def workflow_backlog(self) -> int:
        """The server's count of workflow tasks waiting on the queue (runs not yet past a workflow task)."""
        queue = TaskQueue(name=self.settings.task_queue)
        kind = TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW
        request = DescribeTaskQueueRequest(namespace=self.client.namespace, task_queue=queue, task_queue_type=kind)
        request.report_stats = True
        return int((await self.client.workflow_service.describe_task_queue(request)).stats.approximate_backlog_count)

    async def start_a(self, n: int) -> None:
        async with self.gate:
            try:
                await self.start(A, n)
            except Exception:  # counted and reported: the bench goes on with the runs that started
                self.failed += 1

    async def feed(self, arrivals: Arrivals, backlog: int, stop: asyncio.Event) -> None:
        """Keep `backlog` of A's runs queued (started or starting, not yet at the model) until `stop`."""
        tasks: list[asyncio.Task[None]] = []
        while not stop.is_set():
            with arrivals.lock:
                reached = arrivals.reached[A]
            for _ in range(backlog - (self.issued - self.failed - reached)):  # started or starting
                self.issued += 1
                tasks.append(asyncio.create_task(self.start_a(self.issued)))
            await asyncio.sleep(0.05)
        for task in tasks:
            task.cancel()
