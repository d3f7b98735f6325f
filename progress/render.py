"""How `follow` shows a run in a terminal: stage, current step, streamed text, tools, approvals to decide.

Every character written goes through models/visible.py first: a model's text (or a tool's output, or an
error from a remote server) cannot send escape sequences to the terminal, return to the start of a line to
overwrite it, or reorder it with bidi controls. One-line fields (summaries, tool previews, errors) show a
newline as `\\n`, so they cannot add a line of their own; only the streamed reply keeps its newlines and tabs.
"""

from __future__ import annotations

import json
from typing import Any, TextIO

from models.visible import visible


def decide_command(workflow_id: str, request_id: str) -> str:
    """The exact CLI command that approves `request_id` (reject: `--name reject` with a reason)."""
    payload = json.dumps({"approver": "<your name>", "request_id": request_id})
    return f".venv/bin/temporal workflow signal --workflow-id {workflow_id} --name approve --input '{payload}'"


class Renderer:
    """Writes each event as it arrives; deltas of one reply are written inline, as the model wrote them."""

    def __init__(self, workflow_id: str, out: TextIO) -> None:
        self._workflow_id = workflow_id
        self._out = out
        self._in_text = False
        self._attempts: dict[str, int] = {}

    def _line(self, text: str) -> None:
        if self._in_text:
            self._out.write("\n")
            self._in_text = False
        self._out.write(visible(text, multiline=False) + "\n")
        self._out.flush()

    def show(self, event: dict[str, Any]) -> None:
        """Render one event."""
        kind = event.get("type")
        handler = getattr(self, f"_{kind}", None)
        if handler is not None:
            handler(event)

    def _stage(self, e: dict[str, Any]) -> None:
        self._line(f"== {e['stage']}")

    def _llm_started(self, e: dict[str, Any]) -> None:
        self._line(f"-> {e.get('summary') or 'call_llm'}")

    def _llm_delta(self, e: dict[str, Any]) -> None:
        key, attempt = str(e.get("activity_id")), int(e.get("attempt", 1))
        seen = self._attempts.get(key)
        if seen is not None and attempt > seen:
            self._line(f"   [attempt {seen} abandoned; attempt {attempt} streams the reply again]")
        self._attempts[key] = attempt
        if not self._in_text:
            prefix = f"   [{e['agent']}] " if e.get("agent") else "   "
            self._out.write(visible(prefix, multiline=False))
            self._in_text = True
        self._out.write(visible(str(e.get("text", ""))))  # the reply as written: its newlines and tabs kept
        self._out.flush()

    def _llm_finished(self, e: dict[str, Any]) -> None:
        if e.get("error"):
            self._line(f"   call failed: {e['error']}")
            return
        usage = e.get("usage") or {}
        calls = e.get("tool_calls") or []
        asked = f", asks for {', '.join(calls)}" if calls else ""
        self._line(f"   ({usage.get('input_tokens', 0)} in / {usage.get('output_tokens', 0)} out tokens{asked})")

    def _tool_started(self, e: dict[str, Any]) -> None:
        self._line(f"-> tool {e['tool']}({json.dumps(e.get('arguments', {}))})")

    def _tool_finished(self, e: dict[str, Any]) -> None:
        outcome = "error" if e.get("is_error") else "ok"
        self._line(f"   {e['tool']} {outcome}: {e.get('preview', '')}")

    def _agent_turn(self, e: dict[str, Any]) -> None:
        self._line(f"   agent {e.get('agent')} turn {e.get('turn')}: {e.get('last')}")

    def _handoff(self, e: dict[str, Any]) -> None:
        self._line(f"   agent {e.get('agent')} handed off to {e.get('target')} ({e.get('context')} context)")

    def _approval_requested(self, e: dict[str, Any]) -> None:
        self._line(f"?? waiting for approval {e['request_id']}: {e.get('summary', '')}")
        self._line(f"   approve: {decide_command(self._workflow_id, e['request_id'])}")

    def _approval_decided(self, e: dict[str, Any]) -> None:
        verdict = "approved" if e.get("approved") else "rejected"
        self._line(f"   {e['request_id']} {verdict} by {e.get('approver') or e.get('via')}")

    def _run_finished(self, e: dict[str, Any]) -> None:
        self._line(f"== run finished: {e.get('status')}")
