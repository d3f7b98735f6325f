"""A long agent run for tests and benchmarks: the model reads a big log note one entry at a time.

The note is stored with `tools/notes.py`'s own store, and every `search_notes` call returns all of it
(about `size` characters), like an agent re-reading a large file. The responder is stateless: it
reads the entry number of its last search from the conversation, so a retried or replayed request
gets the same reply, before or after a summary condensed the older turns.
"""

from __future__ import annotations

import re
from typing import Any

from activities.summarise import SUMMARY_INSTRUCTIONS
from devstack.fake_anthropic import Reply
from tools.notes import NoteStore

_ENTRY = re.compile(r"entry (\d+):")
_TARGET = re.compile(r"entries 1 to (\d+)")
_QUERY = re.compile(r"\"query\": \"entry (\d+):\"")


def seed_log(notes_db: str, entries: int, size: int = 20_000) -> str:
    """Store one note whose body lists `entries` entries, padded to about `size` characters; returns the body."""
    width = max(len(f"entry {entries}: "), size // max(1, entries))
    body = "".join(f"entry {i}: ".ljust(width - 1, ".") + "\n" for i in range(1, entries + 1))
    body = body.ljust(size, ".")
    NoteStore(notes_db).write(f"long-run-log-{entries}-{size}", "log", body)
    return body


def _system(body: dict[str, Any]) -> str:
    system = body.get("system") or ""
    return system if isinstance(system, str) else " ".join(b.get("text", "") for b in system)


def _last_entry(messages: list[dict[str, Any]]) -> int:
    for message in reversed(messages):
        if message["role"] != "assistant":
            continue
        for block in message["content"]:
            if block.get("type") == "tool_use" and (match := _ENTRY.search(str(block["input"].get("query", "")))):
                return int(match.group(1))
    return 0


def long_run_prompt(entries: int) -> str:
    """The user's request: one `search_notes` per entry, so the run takes `entries` loop steps."""
    return f"Search the log note for each of entries 1 to {entries}, one search each, then tell me when you have read them all."


def final_answer(entries: int) -> str:
    """What the model answers once it has read every entry."""
    return f"Read all {entries} log entries."


def log_reader(body: dict[str, Any]) -> Reply:
    """A responder for `FakeAnthropic`: search `entry k:` for k = 1..N (N from the prompt), then answer; summaries on request."""
    first = body["messages"][0]["content"][0]["text"]
    if _system(body) == SUMMARY_INSTRUCTIONS:
        seen = [int(n) for n in _QUERY.findall(first)]
        return Reply(
            text=f"The assistant has searched the log for entries 1 to {max(seen, default=0)}; each search returned the whole log."
        )
    target = _TARGET.search(first)
    if target is None:
        raise ValueError(f"the long-run script expects a prompt naming 'entries 1 to N', got {first[:80]!r}")
    entries = int(target.group(1))
    k = _last_entry(body["messages"]) + 1
    if k > entries:
        return Reply(text=final_answer(entries))
    return Reply(text="", tool_calls=[("search_notes", {"query": f"entry {k}:"})])
