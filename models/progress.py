"""The progress stream's public vocabulary: its topic and event types (docs: DESIGN.md, "Live progress")."""

from __future__ import annotations

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
    "run_finished",
)
"""Every event type a run publishes; each event is JSON with `offset`, `type`, `at` and its own fields."""

LAST_EVENT = "run_finished"
"""A follower stops after this event."""

PREVIEW_CHARS = 200
"""How much of a tool's result `tool_finished` shows."""
