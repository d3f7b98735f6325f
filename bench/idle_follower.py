"""What one live follower costs a run that waits: history events and updates per idle hour (issue 29).

    .venv/bin/python bench/idle_follower.py              # one simulated hour (~30 s of real time)
    .venv/bin/python bench/idle_follower.py --hours 3

A follower's poll returns empty after `POLL_WAIT` (models/progress.py) even when nothing happens, and the
follower polls again: each round costs the run history events and one of the server's 2,000 updates per run.
This starts the time-skipping test server, a fake Anthropic server and an in-process worker, opens an approval
request on an `AgentLoopWorkflow` run (it then waits, publishing nothing), follows it with
`progress.reader.follow_events`, and skips time one poll bound at a time, giving the follower real time to poll
again after each. It prints events and poll updates added per hour, then stops everything it started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devstack.fake_anthropic import FakeAnthropic, Reply

TEST_SERVER = Path(sys.executable).parent / "temporal-test-server"
POLL = "__temporal_workflow_stream_poll"


async def history_counts(handle: Any) -> tuple[int, int]:
    """(history events, poll updates accepted) of the run so far."""
    events = (await handle.fetch_history()).events
    polls = sum(
        1
        for e in events
        if e.HasField("workflow_execution_update_accepted_event_attributes")
        and e.workflow_execution_update_accepted_event_attributes.accepted_request.input.name == POLL
    )
    return len(events), polls


async def measure(hours: float) -> None:
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.testing import WorkflowEnvironment

    from config.settings import Settings
    from models.progress import POLL_WAIT
    from models.search_attributes import ALL_KEYS
    from progress.reader import follow_events
    from worker import build_worker

    with FakeAnthropic() as fake, tempfile.TemporaryDirectory() as tmp:
        os.environ.update(
            ANTHROPIC_BASE_URL=fake.url,
            ANTHROPIC_API_KEY="bench-not-real",
            NOTES_DB=f"{tmp}/notes.db",
            BLOB_STORE_DIR=f"{tmp}/blobs",
            TEMPORAL_TASK_QUEUE=f"idle-{uuid.uuid4().hex[:8]}",
        )
        fake.push(Reply(tool_calls=[("write_note", {"title": "Answer", "body": "1200"})]))
        env = await WorkflowEnvironment.start_time_skipping(
            test_server_existing_path=str(TEST_SERVER), data_converter=pydantic_data_converter
        )
        keys = {key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for key in ALL_KEYS}
        await env.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=env.client.namespace, search_attributes=keys)
        )
        settings = Settings.from_env()
        async with env, build_worker(env.client, settings):
            handle = await env.client.start_workflow(
                "AgentLoopWorkflow", {"prompt": "save 1200"}, id="idle-follower", task_queue=settings.task_queue
            )
            seen: list[dict[str, Any]] = []

            async def follow() -> None:
                async for event in follow_events(env.client, handle.id):
                    seen.append(event)

            follower = asyncio.create_task(follow())
            while not any(e["type"] == "approval_requested" for e in seen):
                await asyncio.sleep(0.1)
            await asyncio.sleep(1.0)
            before = await history_counts(handle)
            rounds = round(hours * 3600 / POLL_WAIT.total_seconds())
            for _ in range(rounds):
                await env.sleep(POLL_WAIT + timedelta(milliseconds=100))
                await asyncio.sleep(0.5)  # the follower gets its empty answer and polls again
            after = await history_counts(handle)
            simulated = rounds * (POLL_WAIT.total_seconds() + 0.1) / 3600
            print(f"poll bound {POLL_WAIT.total_seconds():.0f} s, {simulated:.2f} simulated hours, one follower")
            print(f"history events per idle hour: {(after[0] - before[0]) / simulated:.0f}")
            print(f"poll updates per idle hour:   {(after[1] - before[1]) / simulated:.0f}")
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
            await handle.terminate("measured")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hours", type=float, default=1.0, help="simulated idle hours")
    asyncio.run(measure(parser.parse_args().hours))


if __name__ == "__main__":
    main()
