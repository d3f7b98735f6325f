"""Black boxes resume mid-agent: a worker SIGKILLed in the 3rd turn of a black box (both engines), and the
retry on another worker pays for no earlier turn again and runs no tool twice."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest
from temporalio.testing import ActivityEnvironment

from activities.black_box.checkpoint import Checkpoints
from activities.black_box.invoke_agent import BlackBoxActivities
from activities.tool_executor import ToolExecutor
from devstack.fake_anthropic import Reply
from devstack.fake_openai import FakeOpenAI
from models.blackbox import InvokeAgentRequest
from payloads.blobs import blob_store
from tests.conftest import workflow_id
from tests.helpers import eventually, resolver_for
from tests.test_stream_errors import CLAUDE, claude_engines
from tools.catalog import REGISTRY
from tools.deps import ToolDeps

AGENTS = Path(__file__).parent / "fixtures" / "agents"
HISTORIES = Path(__file__).parent / "histories"


def script() -> list[Reply]:
    """Two turns with a tool each, then the answer: slow the first time (the worker dies meanwhile)."""
    return [
        Reply(tool_calls=[("tally", {"label": "t1"})]),
        Reply(tool_calls=[("tally", {"label": "t2"})]),
        Reply(text="slow answer", delay=60),
        Reply(text="Both steps tallied."),
    ]


@pytest.fixture
def counter_env(tmp_path) -> dict[str, str]:
    agents = tmp_path / "agents.toml"
    agents.write_text(
        textwrap.dedent(
            """
            [agents.counter]
            instructions = "Tally each step, then answer."
            tools = ["tally"]
            max_turns = 6
            """
        )
    )
    return {
        "AGENTS_FILE": str(agents),
        "TOOL_MODULES": "tally_tools",
        "PYTHONPATH": str(AGENTS),
        "TALLY_FILE": str(tmp_path / "tally.txt"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }


def tallied(env: dict[str, str]) -> list[str]:
    path = Path(env["TALLY_FILE"])
    return path.read_text().split("\n")[:-1] if path.exists() else []


@pytest.mark.parametrize("model", ["anthropic:claude-sonnet-5-5", "openai:gpt-5"])
async def test_a_black_box_killed_in_its_third_turn_resumes_there(
    client, settings, fake_llm, worker_processes, counter_env, model
):
    with FakeOpenAI() as fake_openai:
        fake = fake_openai if model.startswith("openai") else fake_llm
        fake.push(*script())
        env = {**counter_env, "OPENAI_BASE_URL": fake_openai.url}
        first = worker_processes(**env)
        handle = await client.start_workflow(
            "BlackBoxAgentWorkflow",
            {"agent": "counter", "prompt": "Tally two steps.", "model": model},
            id=workflow_id("bb-resume"),
            task_queue=settings.task_queue,
        )
        await eventually(lambda: len(fake.requests) >= 3 or None, timeout=60)  # the 3rd turn is in flight
        first.kill()
        worker_processes(**env)
        result = await handle.result()

        assert result["status"] == "completed" and result["output"] == "Both steps tallied."
        # Turns 1 and 2 were asked once; only the turn in flight was asked again.
        sizes = Counter(len(r.items if fake is fake_openai else r.messages) for r in fake.requests)
        assert sizes == {1: 1, 3: 1, 5: 2}, sizes  # turn 1 (the prompt), turn 2, turn 3 twice
        assert [line.split()[0] for line in tallied(env)] == ["t1", "t2"]  # each tool ran once
        # What a clean run reports: three replies, two tool calls (the cut-off reply was never delivered).
        assert result["usage"]["llm_calls"] == 3 and result["usage"]["tool_calls"] == 2
        history = await handle.fetch_history()
        if model.startswith("anthropic") and os.environ.get("RECORD_HISTORIES") == "1":  # replayed by test_replay
            (HISTORIES / "blackbox_resumed.json").write_text(json.dumps(history.to_json_dict(), indent=1))
        attempts = [
            e.activity_task_started_event_attributes.attempt
            for e in history.events
            if e.HasField("activity_task_started_event_attributes")
        ]
        assert max(attempts) == 2


async def test_an_answer_checkpointed_before_its_attempt_ended_is_taken_not_asked_again(settings, fake_llm):
    """The Claude loop checkpoints each reply before acting on it. An attempt that got its answer and then ended
    (its worker lost before reporting) leaves a conversation whose last turn is that answer: the retry judges it.
    Sent back instead, Claude would take the turn as a prefill and continue it, and the call would be paid twice."""
    checkpoints = Checkpoints(blob_store(settings.blobs, settings.payloads))
    executor = ToolExecutor(REGISTRY, ToolDeps.from_settings(settings))
    activities = BlackBoxActivities(settings, resolver_for(REGISTRY), claude_engines(settings), executor, checkpoints)
    request = InvokeAgentRequest(agent="assistant", prompt="hi", model=CLAUDE)
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, workflow_id=workflow_id("bb-answered"), attempt=1)
    fake_llm.push(Reply(text="The answer, paid for once."))
    first = await env.run(activities.invoke_agent, request)
    env.info = dataclasses.replace(env.info, attempt=2)  # the same activity again: its checkpoint is found
    again = await env.run(activities.invoke_agent, request)

    assert first.output == again.output == "The answer, paid for once."
    assert len(fake_llm.requests) == 1  # the retry asked nothing (an empty script would have answered 500)
    assert again.usage.llm_calls == 1 and again.turns == 1
