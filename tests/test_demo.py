"""The README's first command, run non-interactively: it must finish the agent run and exit 0."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from devstack.dev_server import port_open
from tests.helpers import ROOT
from tools.notes import NoteStore

pytestmark = pytest.mark.xdist_group("default-ports")
"""The demo and the dev loop default to ports 7233/8233 and the README's gateway to 8088: one xdist worker runs these."""


def run_demo(tmp_path, *args: str) -> tuple[subprocess.CompletedProcess, dict[str, str]]:
    assert not port_open(7233), "the demo starts its own dev server on 7233; something else holds that port"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "TEMPORAL_", "NOTIFY_"))}
    env["NOTES_DB"] = str(tmp_path / "notes.db")
    env["NOTIFY_OUTBOX"] = str(tmp_path / "outbox.jsonl")
    done = subprocess.run(
        [sys.executable, "-m", "devstack.demo", "--auto-approve", "--exit", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert not port_open(7233), "--exit must stop the dev server"
    return done, env


def test_hybrid_demo_runs_offline_end_to_end(tmp_path):
    done, env = run_demo(tmp_path)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "SCRIPTED LOCAL MODEL SERVER" in out
    assert "Started HybridAgentWorkflow demo-" in out
    assert "Waiting for approval (req-1): approve plan:" in out
    assert '--name approve --input \'{"approver": "you", "request_id": "req-1"}\'' in out
    assert "http://localhost:8233/namespaces/default/workflows/demo-" in out
    assert (
        "Stages completed (from the event history): stage 1: plan, stage 2: specialists, stage 3: approval, stage 4: execute, stage 5: notify"
        in out
    )
    assert '"status": "completed"' in out and "6000 * 0.2 - 500 = 700" in out
    [line] = (tmp_path / "outbox.jsonl").read_text().splitlines()
    notification = json.loads(line)
    assert notification["idempotency_key"].startswith("demo-") and notification["status"] == "completed"
    [note] = NoteStore(env["NOTES_DB"]).all()
    assert "Invest" in note.body


def test_loop_demo_still_runs(tmp_path):
    done, env = run_demo(tmp_path, "--workflow", "loop")
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "Waiting for approval (req-1): run write_note" in out
    assert '"status": "completed"' in out and "6000 * 0.2 = 1200" in out
    [note] = NoteStore(env["NOTES_DB"]).all()
    assert note.body == "6000 * 0.2 = 1200"
