"""Turn-level resume for black boxes: after every model reply and every round of tool results, the agent's
conversation so far goes to the blob store and its key, turn count and corrections into the heartbeat.

Heartbeats are throttled (a crash can come before the last one is sent), so the marker is also written to the
blob store under the activity's own name, at once. A retried attempt reads it (or the last heartbeat's) and
starts from there: the
model calls already answered are not paid for again and the tools already run are not run again; a round
of tool calls the model asked for but whose results were not recorded runs once more, with the same call
ids and so the same idempotency keys. At most the turn in flight is repeated.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from temporalio import activity

from models.blackbox import BlackBoxHandoff
from models.conversation import Conversation
from models.errors import BlobNotFound
from models.run import Usage
from payloads.blobs import BlobStore


@dataclass(frozen=True)
class ResumePoint:
    """Where an earlier attempt got to."""

    conversation: Conversation
    turns: int
    corrections: int = 0
    usage: Usage | None = None
    """What the attempts so far spent, as of the checkpoint."""
    agent: str | None = None
    """The agent that had the conversation (after handoffs); None: the one the request names."""
    handoffs: tuple[BlackBoxHandoff, ...] = ()
    """The handoffs up to the checkpoint."""


@dataclass(frozen=True)
class ItemsResumePoint:
    """Where an earlier attempt of an Agents SDK run got to: its input items so far."""

    items: list[Any]
    turns: int
    usage: Usage | None = None
    agent: str | None = None
    handoffs: tuple[BlackBoxHandoff, ...] = ()


def _marker_name() -> str:
    info = activity.info()
    return f"black-box-checkpoints/{info.workflow_id}/{info.workflow_run_id}/{info.activity_id}.json"


class Checkpoints:
    """Saves and restores a black box's conversation through the blob store (sealed when encryption is on)."""

    def __init__(self, blobs: BlobStore) -> None:
        self._blobs = blobs

    async def save(
        self,
        conversation: Conversation,
        *,
        turns: int,
        corrections: int = 0,
        usage: Usage | None = None,
        agent: str | None = None,
        handoffs: Sequence[BlackBoxHandoff] = (),
    ) -> dict[str, Any]:
        """Store the conversation; the heartbeat-sized marker that finds it again (also stored, durably)."""
        key = await asyncio.to_thread(self._blobs.put, conversation.model_dump_json().encode())
        marker = {"conversation": key, "turns": turns, "corrections": corrections, **_active(agent, handoffs)}
        return await self._keep(marker, usage)

    async def _keep(self, marker: dict[str, Any], usage: Usage | None) -> dict[str, Any]:
        """Store the marker whole; return the heartbeat's copy (handoff reasons are model text: store only)."""
        if activity.in_activity():
            stored = {**marker, "usage": usage.model_dump() if usage is not None else None}
            await asyncio.to_thread(self._blobs.put_object, _marker_name(), json.dumps(stored).encode())
        if "handoffs" in marker:
            return {**marker, "handoffs": [{k: v for k, v in h.items() if k != "reason"} for h in marker["handoffs"]]}
        return marker

    async def _marker(self, kind: str) -> dict[str, Any] | None:
        """The latest marker of this activity: the stored one, else the last heartbeat's."""
        if not activity.in_activity():
            return None
        try:
            stored = json.loads(await asyncio.to_thread(self._blobs.get_object, _marker_name()))
        except BlobNotFound:
            stored = None
        if isinstance(stored, dict) and stored.get(kind):
            return stored
        return _resume_marker(activity.info().heartbeat_details, kind)

    async def save_items(
        self,
        items: list[Any],
        *,
        turns: int,
        usage: Usage | None = None,
        agent: str | None = None,
        handoffs: Sequence[BlackBoxHandoff] = (),
    ) -> dict[str, Any]:
        """Store an Agents SDK run's input items so far (the prompt, each reply's items, each tool output)."""
        key = await asyncio.to_thread(self._blobs.put, json.dumps(items, default=str).encode())
        return await self._keep({"items": key, "turns": turns, **_active(agent, handoffs)}, usage)

    async def restore_items(self) -> ItemsResumePoint | None:
        """The items, turns, usage and active agent an earlier attempt of this Agents SDK run recorded, or None."""
        marker = await self._marker("items")
        if marker is None:
            return None
        data = await asyncio.to_thread(self._blobs.get, marker["items"])
        return ItemsResumePoint(
            items=json.loads(data),
            turns=int(marker.get("turns", 0)),
            usage=_usage(marker),
            agent=_agent(marker),
            handoffs=_handoffs(marker),
        )

    async def restore(self) -> ResumePoint | None:
        """The last point an earlier attempt of this activity recorded (None on a first attempt or without one)."""
        marker = await self._marker("conversation")
        if marker is None:
            return None
        data = await asyncio.to_thread(self._blobs.get, marker["conversation"])
        return ResumePoint(
            conversation=Conversation.model_validate_json(data),
            turns=int(marker.get("turns", 0)),
            corrections=int(marker.get("corrections", 0)),
            usage=_usage(marker),
            agent=_agent(marker),
            handoffs=_handoffs(marker),
        )


def _resume_marker(details: Any, kind: str = "conversation") -> dict[str, Any] | None:
    for detail in reversed(list(details or [])):
        if isinstance(detail, dict) and isinstance(detail.get("resume"), dict) and detail["resume"].get(kind):
            marker: dict[str, Any] = detail["resume"]
            return marker
    return None


def _active(agent: str | None, handoffs: Sequence[BlackBoxHandoff]) -> dict[str, Any]:
    """The marker's record of handoffs so far: small (names, context, reason, turn), free of conversation text."""
    if agent is None:
        return {}
    return {"agent": agent, "handoffs": [h.model_dump() for h in handoffs]}


def _agent(marker: dict[str, Any]) -> str | None:
    agent = marker.get("agent")
    return agent if isinstance(agent, str) and agent else None


def _handoffs(marker: dict[str, Any]) -> tuple[BlackBoxHandoff, ...]:
    raw = marker.get("handoffs")
    return tuple(BlackBoxHandoff.model_validate(h) for h in raw) if isinstance(raw, list) else ()


def _usage(marker: dict[str, Any]) -> Usage | None:
    raw = marker.get("usage")
    return Usage.model_validate(raw) if isinstance(raw, dict) else None


def pending_calls(conversation: Conversation) -> list[Any]:
    """Tool calls of the last assistant turn that have no results yet (the round a crash cut off)."""
    if not conversation.messages or conversation.messages[-1].role != "assistant":
        return []
    return [b for b in conversation.messages[-1].content if getattr(b, "type", "") == "tool_use"]
