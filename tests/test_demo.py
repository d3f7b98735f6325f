"""The README's first command, run non-interactively: it must finish the agent run and exit 0."""

from __future__ import annotations

import os
import subprocess
import sys

from devstack.dev_server import port_open
from tests.helpers import ROOT
from tools.notes import NoteStore


def test_demo_runs_offline_end_to_end(tmp_path):
    assert not port_open(7233), "the demo starts its own dev server on 7233; something else holds that port"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANTHROPIC_", "TEMPORAL_"))}
    env["NOTES_DB"] = str(tmp_path / "notes.db")
    done = subprocess.run(
        [sys.executable, "-m", "devstack.demo", "--auto-approve", "--exit"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert "SCRIPTED LOCAL MODEL SERVER" in out
    assert "Waiting for approval (req-1): run write_note" in out
    assert '"status": "completed"' in out and "6000 * 0.2 = 1200" in out
    assert "http://localhost:8233/namespaces/default/workflows/demo-" in out
    [note] = NoteStore(env["NOTES_DB"]).all()
    assert note.body == "6000 * 0.2 = 1200"
    assert not port_open(7233), "--exit must stop the dev server"
