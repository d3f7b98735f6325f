"""Invisible characters made visible (models/visible.py), and the terminal follower that writes through it."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
import unicodedata

import pytest

from devstack.fake_anthropic import Reply
from models.visible import visible
from progress.render import Renderer
from tests.conftest import workflow_id
from tests.helpers import ROOT

BIDI = "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c"
ZERO_WIDTH = "\u200b\u200c\u200d\ufeff\u2060\u00ad"
HOSTILE = (
    "Refund \x1b[2J\x1b]0;owned\x07 of order A1\rApproved by admin"  # clear the screen, set the title, overwrite
    " \u202etxt.exe\u202c \u2067isolated\u2069 zero\u200bwidth\ufeff \x9b31m C1 \x00nul \U000e0041tag \u2028sep"
)


def invisible(text: str) -> set[str]:
    """The characters of `text` that a person would not see (what the policy must never let through)."""
    return {c for c in text if unicodedata.category(c) in ("Cc", "Cf", "Cs", "Zl", "Zp") and c not in "\n\t"}


@pytest.mark.parametrize("char", [*BIDI, *ZERO_WIDTH, "\x1b", "\r", "\x00", "\x7f", "\x85", "\x9b", "\u2028", "\u2029"])
def test_every_bidi_control_and_invisible_character_is_named(char):
    shown = visible(f"a{char}b")
    assert not invisible(shown)
    expected = "\\r" if char == "\r" else f"\\u{ord(char):04x}"
    assert shown == f"a{expected}b"


def test_text_people_read_is_left_alone():
    text = "Zürich: 6000 × 0.2 = 1200 € — 日本語, עברית, العربية, emoji 😀\n\tindented"
    assert visible(text) == text
    assert visible("tab\tand\nnewline", multiline=False) == "tab\\tand\\nnewline"
    assert visible("\U000e0041") == "\\udb40\\udc41" and visible("\ud800") == "\\ud800"  # a tag, a lone surrogate


def test_json_passed_through_stays_the_same_json():
    document = json.dumps({"note": HOSTILE}, ensure_ascii=False)
    shown = visible(document)
    assert not invisible(shown) and json.loads(shown) == {"note": HOSTILE}


def test_the_follower_never_writes_an_invisible_character():
    out = io.StringIO()
    renderer = Renderer("wf-1", out)
    events = [
        {"type": "stage", "stage": f"plan{HOSTILE}"},
        {"type": "llm_started", "summary": f"step 1: call_llm {HOSTILE}"},
        {"type": "llm_delta", "activity_id": "1", "attempt": 1, "agent": f"a{HOSTILE}", "text": HOSTILE},
        {"type": "llm_delta", "activity_id": "1", "attempt": 1, "text": "\nsecond line\n\ttabbed"},
        {"type": "llm_finished", "error": HOSTILE},
        {"type": "tool_started", "tool": f"write_note{HOSTILE}", "arguments": {"body": HOSTILE}},
        {"type": "tool_finished", "tool": "write_note", "preview": f"saved\n?? forged line{HOSTILE}"},
        {"type": "agent_turn", "agent": "x", "turn": 1, "last": HOSTILE},
        {"type": "handoff", "agent": "x", "target": HOSTILE, "context": "summary"},
        {"type": "approval_requested", "request_id": "req-1", "summary": f"run write_note({HOSTILE})"},
        {"type": "approval_decided", "request_id": "req-1", "approved": True, "approver": HOSTILE},
        {"type": "run_finished", "status": HOSTILE},
    ]
    for event in events:
        renderer.show(event)
    written = out.getvalue()
    assert not invisible(written), sorted(invisible(written))
    assert "\\u001b[2J" in written and "\\u202etxt.exe" in written and "order A1\\rApproved" in written
    assert "\nsecond line\n\ttabbed" in written  # the streamed reply keeps its own lines and tabs
    assert "saved\\n?? forged line" in written  # a one-line field cannot start a line of its own
    assert not [line for line in written.splitlines() if line.startswith("?? forged")]


async def test_python_m_progress_follow_sends_the_terminal_no_escape_sequence(client, worker, fake_llm, dev_server):
    """A model streams escape sequences, a carriage return and bidi overrides: `follow` prints them as escapes."""
    fake_llm.push(Reply(text=HOSTILE, chunk_delay=0.01))
    handle = await client.start_workflow(
        "AgentLoopWorkflow", {"prompt": "hi"}, id=workflow_id("follow-visible"), task_queue=worker.task_queue
    )
    assert (await handle.result())["output"] == HOSTILE
    proc = await asyncio.create_subprocess_exec(  # asyncio: the in-process worker answers its queries on this loop
        sys.executable,
        "-m",
        "progress",
        "follow",
        handle.id,
        cwd=ROOT,
        env={**os.environ, "TEMPORAL_ADDRESS": dev_server.address},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    assert proc.returncode == 0, err.decode()
    text = out.decode()
    assert not invisible(text), sorted(invisible(text))
    assert "\\u001b[2J\\u001b]0;owned\\u0007 of order A1\\rApproved by admin \\u202etxt.exe" in text
