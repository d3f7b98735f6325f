"""The progress stream's public vocabulary: its topic and event types (docs: DESIGN.md, "Live progress")."""

from __future__ import annotations

from datetime import timedelta

PROGRESS_TOPIC = "progress"
"""The stream topic every progress event is published on."""

EVENT_TYPES = (
    "llm_started",
    "llm_delta",
    "llm_finished",
    "tool_started",
    "tool_finished",
    "approval_requested",
    "approval_decided",
    "stage",
    "agent_turn",
    "handoff",
    "spend_limit_wait",
    "run_finished",
)
"""Every event type a run publishes; each event is JSON with `offset`, `type`, `at` and its own fields."""

LAST_EVENT = "run_finished"
"""A follower stops after this event."""

PREVIEW_CHARS = 200
"""How much of a tool's result `tool_finished` shows."""

# --- followers' polls, as the run admits them (workflows/progress.py) --------------------------------
POLL_WAIT = timedelta(seconds=120)
"""Longest a follower's poll waits for news: then it returns empty and the follower polls again, so a poll whose
follower went away leaves the run's in-flight updates within this time even when nothing happens."""

MAX_POLLS_IN_FLIGHT = 4
"""Followers' polls a run admits at once. The server allows 10 in-flight updates per run: the other 6 stay free
for `decide`, however many followers there are."""

MAX_POLLS_PER_RUN = 1500
"""Polls one run (one generation: continue-as-new starts a new count) admits in all. The server allows 2,000
updates per run; the remaining 500 stay for `decide` even when followers watch a run wait for days."""

POLL_REFUSED = "PollRefused"
"""The error type of a poll the run refused; the reader pauses and polls again (progress/reader.py)."""
POLL_DEFERRED = "PollDeferred"
"""The error type of a poll refused for a moment, while a local activity's result reaches the run
(workflows/local_steps.py); the reader polls again at once."""


def poll_refusal(in_flight: int, admitted: int) -> str | None:
    """Why the run refuses another follower's poll now (None: it admits it), given its polls in flight and admitted."""
    if in_flight >= MAX_POLLS_IN_FLIGHT:
        return f"{in_flight} polls are already waiting on this run, the most it admits at once: poll again later"
    if admitted >= MAX_POLLS_PER_RUN:
        return (
            f"this run has admitted {admitted} polls, its share of the server's 2,000 updates per run: poll again later"
        )
    return None
