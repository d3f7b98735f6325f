"""Cassettes and regression evals from real archived runs on the dev server.

Three runs of the demo assistant (played by the demo's scripted model) are archived. One becomes a
cassette that replays offline, and a tampered copy diverges, naming the step. Then the eval re-runs all
three: with instructions that stop the assistant using the calculator (its script makes no calculator
call) all three are regressions; with the original instructions all three pass, and the write tool is
served from the recording, never executed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid

from devstack.fake_langfuse import FakeLangfuse
from devstack.scripted_model import respond
from testkit.cli import suite
from testkit.evaluate import evaluate, summary_table
from testkit.kit import AgentKit
from tests.conftest import workflow_id
from tests.helpers import ROOT, pending_approvals
from tools.catalog import REGISTRY

PROMPTS = ["What is 6000 * 0.2?", "What is 12 * 7?", "What is 100 / 4? Then save a note with the answer."]
TOOLS = '["calculator", "search_notes", "write_note"]'


def run_testkit(blob_dir, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BLOB_STORE_DIR": str(blob_dir), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "testkit", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=90
    )


async def archive_three_runs(client, worker, fake_llm, customer: str) -> list[str]:
    """Three demo-assistant runs, the third approved to save a note; their workflow ids."""
    fake_llm.responder = respond
    ids = []
    for prompt in PROMPTS:
        handle = await client.start_workflow(
            "AgentLoopWorkflow",
            {"prompt": prompt, "customer_id": customer, "approval": {"approvers": ["alice"]}},
            id=workflow_id("eval-source"),
            task_queue=worker.task_queue,
        )
        if "note" in prompt:
            [pending] = await pending_approvals(handle)
            await handle.execute_update(
                "decide", {"request_id": pending["request_id"], "approved": True, "approver": "alice"}
            )
        assert (await handle.result())["status"] == "completed"
        ids.append(handle.id)
    return ids


def agents_file(tmp_path, name: str, instructions: str):
    path = tmp_path / name
    path.write_text(f'[agents.assistant]\ninstructions = "{instructions}"\ntools = {TOOLS}\n')
    return path


CHANGED_SCRIPT = """
# The changed instructions' model: answers from memory; asked for a note, saves one the recording lacks.
[[prompts]]
match = "note"
turns = [
  { tool_calls = [{ tool = "write_note", arguments = { title = "Guess", body = "about 25" } }] },
  { text = "It is about 25. Saved." },
]

[agents.assistant]
turns = [{ text = "That is roughly it, from memory." }]
"""


async def test_cassettes_replay_and_evals_flag_a_changed_agent(client, worker, fake_llm, blob_dir, tmp_path):
    customer = f"eval-{uuid.uuid4().hex[:6]}"
    ids = await archive_three_runs(client, worker, fake_llm, customer)

    # A cassette of the first run: its replies and tool outputs; replaying it diverges nowhere.
    cassette = tmp_path / "first.json"
    done = run_testkit(blob_dir, "export", ids[0], "-o", str(cassette))
    assert done.returncode == 0, done.stderr
    recorded = json.loads(cassette.read_text())
    assert recorded["prompt"] == PROMPTS[0] and recorded["agent"] == "assistant"
    assert [(c["tool"], c["output"]) for c in recorded["tool_calls"]] == [("calculator", "1200")]
    done = run_testkit(blob_dir, "replay", str(cassette), "--server", "time-skipping")
    assert done.returncode == 0 and "replayed (completed, 1 tool calls)" in done.stdout, done.stdout + done.stderr

    # A recording that says another calculation was made: the replay fails, naming the step.
    recorded["tool_calls"][0]["arguments"] = {"expression": "6000 * 0.3"}
    cassette.write_text(json.dumps(recorded))
    done = run_testkit(blob_dir, "replay", str(cassette), "--server", "time-skipping")
    assert done.returncode == 1, done.stdout + done.stderr
    assert (
        'step 1: the agent called calculator({"expression": "6000 * 0.2"}); the recording has calculator({"expression": "6000 * 0.3"}) next'
        in done.stdout
    )

    # Changed instructions, and a model that no longer calculates: all three runs regress.
    changed = agents_file(tmp_path, "changed.toml", "You are a quick assistant. Answer from memory.")
    script = tmp_path / "changed_model.toml"
    script.write_text(textwrap.dedent(CHANGED_SCRIPT))
    where = ["--where", "agent=assistant", "--where", f"customer_id={customer}"]
    changed_model = ["--agents-file", str(changed), "--script", str(script)]  # on a dev server of its own
    with FakeLangfuse() as langfuse:
        done = run_testkit(blob_dir, "eval", *where, *changed_model, "--run-name", "changed", env=langfuse.env())
    assert done.returncode == 1, done.stdout + done.stderr
    assert "3 runs, 3 regression(s)" in done.stdout and done.stdout.count("REGRESSION") == 3
    assert "tool calls -calculator" in done.stdout
    assert "divergence: step 1: the agent called write_note" in done.stdout  # a write the recording lacks
    # Langfuse configured: the suite is a dataset run, each item scored a regression.
    assert [d["name"] for d in langfuse.datasets] == ["agent-regressions"]
    assert sorted(i["input"]["prompt"] for i in langfuse.dataset_items) == sorted(PROMPTS)
    assert [s["value"] for s in langfuse.scores if s["name"] == "regression"] == [1.0, 1.0, 1.0]
    runs = {s.attributes.get("langfuse.experiment.name") for s in langfuse.spans if s.name == "experiment-item-task"}
    assert runs == {"changed"}

    # The original instructions restored: every run passes, and the note is served from the recording.
    restored = agents_file(tmp_path, "restored.toml", REGISTRY.agents["assistant"].instructions)
    cases = suite(_args(where=["agent=assistant", f"customer_id={customer}"]))
    async with AgentKit(restored, server="time-skipping", dev_model=True, replace_built_ins=True) as kit:
        results = await evaluate(kit, cases)
    print(summary_table(results))
    assert [r.regression for r in results] == [False, False, False] and {r.output_check for r in results} == {"equal"}
    notes = [c for r in results for c in r.report.tool_calls if c.tool == "write_note"]
    assert [c.served for c in notes] == ["recorded"]


def _args(**values):
    import argparse

    return argparse.Namespace(cassette=[], **values)
