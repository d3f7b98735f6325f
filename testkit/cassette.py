"""Cassettes: an archived run's prompt, model replies and tool calls with their outputs, to re-run it offline.

A cassette is JSON (`agent-cassette/1`). Made from a run's archive (archives/store.py), which holds the
run's input and its whole conversation: each assistant message becomes a scripted model reply, and each
tool call is kept with the output the run got. Only runs that keep their conversation in the archive can
be exported: `AgentLoopWorkflow` runs (pattern B; a black box's turns happen inside one activity).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from devstack.scripted_http import Reply
from testkit.tap import ToolCallRecord

FORMAT = "agent-cassette/1"


class CassetteInvalid(ValueError):
    """An archive that cannot become a cassette, or a file that is not one; the message says which and why."""


class RecordedTurn(BaseModel):
    """One model reply: its text and the tool calls it asked for."""

    text: str = ""
    tool_calls: list[dict[str, Any]] = Field(default_factory=list)
    """Each `{"tool": name, "arguments": {...}}`."""


class RecordedCall(BaseModel):
    """One tool call the run made and what it got back."""

    tool: str
    arguments: dict[str, Any] = Field(default_factory=dict)
    output: str = ""
    is_error: bool = False


class Cassette(BaseModel):
    """A run to re-run: what was asked, what the model said, what the tools answered, how it ended."""

    format: str = FORMAT
    workflow_id: str
    workflow_type: str = "AgentLoopWorkflow"
    agent: str = "assistant"
    prompt: str
    model: str | None = None
    turns: list[RecordedTurn]
    tool_calls: list[RecordedCall]
    status: str = ""
    output: Any = None
    usage: dict[str, Any] = Field(default_factory=dict)
    annotations: dict[str, Any] = Field(default_factory=dict)

    def replies(self) -> list[Reply]:
        """The recorded model replies, in order, as scripted steps."""
        return [Reply(text=t.text, tool_calls=[(c["tool"], c["arguments"]) for c in t.tool_calls]) for t in self.turns]

    def recorded_calls(self) -> list[ToolCallRecord]:
        """The recorded tool calls with their outputs, for the tool tap."""
        return [ToolCallRecord(c.tool, c.arguments, c.output, c.is_error, "recorded") for c in self.tool_calls]

    def save(self, path: str | Path) -> None:
        """Write it as indented JSON."""
        Path(path).write_text(self.model_dump_json(indent=1), encoding="utf-8")

    @classmethod
    def load(cls, path: str | Path) -> Cassette:
        """Read one; CassetteInvalid names the file and what is wrong."""
        try:
            raw = json.loads(Path(path).read_text(encoding="utf-8"))
            if raw.get("format") != FORMAT:
                raise CassetteInvalid(f"{path}: not a cassette (format {raw.get('format')!r}, expected {FORMAT!r})")
            return cls.model_validate(raw)
        except (OSError, ValueError) as exc:
            if isinstance(exc, CassetteInvalid):
                raise
            raise CassetteInvalid(f"{path}: cannot read the cassette: {exc}") from None


def from_archive(document: dict[str, Any], annotations: dict[str, Any] | None = None) -> Cassette:
    """The cassette of one archive document (`python -m archives show` prints the same document)."""
    run = document.get("input") or {}
    conversation = (document.get("conversations") or {}).get("agent")
    where = f"archive of {document.get('workflow_id')!r}"
    if not run.get("prompt"):
        raise CassetteInvalid(f"{where}: it does not record the run's input (archived before cassettes existed)")
    if not conversation:
        raise CassetteInvalid(
            f"{where}: a {document.get('workflow_type')} run keeps no whole conversation in its archive; "
            "cassettes are made of AgentLoopWorkflow runs"
        )
    messages = conversation.get("messages") or []
    items = document.get("items") or {}
    results = {
        block["tool_use_id"]: block
        for m in messages
        if m["role"] == "user"
        for block in m["content"]
        if block.get("type") == "tool_result"
    }
    turns, calls = [], []
    for message in (m for m in messages if m["role"] == "assistant"):
        text = "".join(b["text"] for b in message["content"] if b.get("type") == "text")
        uses = [b for b in message["content"] if b.get("type") == "tool_use"]
        turns.append(
            RecordedTurn(text=text, tool_calls=[{"tool": u["name"], "arguments": u["arguments"]} for u in uses])
        )
        for use in uses:
            result = results.get(use["id"], {})
            calls.append(
                RecordedCall(
                    tool=use["name"],
                    arguments=use["arguments"],
                    output=_full_output(result, items),
                    is_error=bool(result.get("is_error")),
                )
            )
    return Cassette(
        workflow_id=str(document.get("workflow_id")),
        workflow_type=str(document.get("workflow_type") or "AgentLoopWorkflow"),
        agent=run.get("agent") or "assistant",
        prompt=run["prompt"],
        model=run.get("model"),
        turns=turns,
        tool_calls=calls,
        status=str(document.get("status") or ""),
        output=document.get("output"),
        usage=document.get("usage") or {},
        annotations=annotations or {},
    )


def _full_output(result: dict[str, Any], items: dict[str, Any]) -> str:
    """A tool's whole output: its stored blob when the conversation holds only a preview."""
    content = str(result.get("content", ""))
    item = items.get(result.get("content_ref") or "", {})
    if "base64" in item:
        return base64.b64decode(item["base64"]).decode("utf-8", errors="replace")
    for key in ("json", "content"):
        if key in item:
            return item[key] if isinstance(item[key], str) else json.dumps(item[key], ensure_ascii=False)
    return content
