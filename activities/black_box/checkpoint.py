"""Turn-level resume for black boxes: after every model reply and every round of tool results, the agent's
conversation so far goes to the blob store and its key, turn count and corrections into the heartbeat.

A retried attempt reads the last heartbeat (`activity.info().heartbeat_details`) and starts from there: the
model calls already answered are not paid for again and the tools already run are not run again; a round
of tool calls the model asked for but whose results were not recorded runs once more, with the same call
ids and so the same idempotency keys. At most the turn in flight is repeated.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from temporalio import activity

from models.conversation import Conversation
from payloads.blobs import BlobStore


@dataclass(frozen=True)
class ResumePoint:
    """Where an earlier attempt got to."""

    conversation: Conversation
    turns: int
    corrections: int = 0


class Checkpoints:
    """Saves and restores a black box's conversation through the blob store (sealed when encryption is on)."""

    def __init__(self, blobs: BlobStore) -> None:
        self._blobs = blobs

    async def save(self, conversation: Conversation, *, turns: int, corrections: int = 0) -> dict[str, Any]:
        """Store the conversation; the heartbeat-sized marker that finds it again."""
        key = await asyncio.to_thread(self._blobs.put, conversation.model_dump_json().encode())
        return {"conversation": key, "turns": turns, "corrections": corrections}

    async def save_items(self, items: list[Any], *, turns: int) -> dict[str, Any]:
        """Store an Agents SDK run's input items so far (the prompt, each reply's items, each tool output)."""
        key = await asyncio.to_thread(self._blobs.put, json.dumps(items, default=str).encode())
        return {"items": key, "turns": turns}

    async def restore_items(self) -> tuple[list[Any], int] | None:
        """(items, turns) an earlier attempt of this Agents SDK run recorded, or None."""
        if not activity.in_activity():
            return None
        marker = _resume_marker(activity.info().heartbeat_details, "items")
        if marker is None:
            return None
        data = await asyncio.to_thread(self._blobs.get, marker["items"])
        return json.loads(data), int(marker.get("turns", 0))

    async def restore(self) -> ResumePoint | None:
        """The last point an earlier attempt of this activity recorded (None on a first attempt or without one)."""
        if not activity.in_activity():
            return None
        marker = _resume_marker(activity.info().heartbeat_details)
        if marker is None:
            return None
        data = await asyncio.to_thread(self._blobs.get, marker["conversation"])
        return ResumePoint(
            conversation=Conversation.model_validate_json(data),
            turns=int(marker.get("turns", 0)),
            corrections=int(marker.get("corrections", 0)),
        )


def _resume_marker(details: Any, kind: str = "conversation") -> dict[str, Any] | None:
    for detail in reversed(list(details or [])):
        if isinstance(detail, dict) and isinstance(detail.get("resume"), dict) and detail["resume"].get(kind):
            marker: dict[str, Any] = detail["resume"]
            return marker
    return None


def pending_calls(conversation: Conversation) -> list[Any]:
    """Tool calls of the last assistant turn that have no results yet (the round a crash cut off)."""
    if not conversation.messages or conversation.messages[-1].role != "assistant":
        return []
    return [b for b in conversation.messages[-1].content if getattr(b, "type", "") == "tool_use"]
