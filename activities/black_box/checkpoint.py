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
from typing import TYPE_CHECKING, Any

from temporalio import activity

from models.blackbox import BlackBoxHandoff
from models.conversation import Conversation
from models.errors import BlobNotFound
from models.run import Usage
from payloads.blobs import BlobStore

if TYPE_CHECKING:
    from activities.black_box.ledger import AgentLedger


@dataclass(frozen=True)
class ResumePoint:
    """Where an earlier attempt got to: its conversation (the Claude loop) or input items (an Agents SDK run)."""

    turns: int
    conversation: Conversation | None = None
    items: list[Any] | None = None
    corrections: int = 0
    """Output corrections the agent that had the conversation was sent (tools/final_answer.py)."""
    usage: Usage | None = None
    """What the attempts so far spent, as of the checkpoint."""
    agent: str | None = None
    """The agent that had the conversation (after handoffs); None: the one the request names."""
    handoffs: tuple[BlackBoxHandoff, ...] = ()
    """The handoffs up to the checkpoint."""

    def carry_into(self, ledger: AgentLedger, *, handed_to: bool) -> None:
        """Go on from here: its turns, its spend merged with the last heartbeat's that got through (each may be the
        later for some counts), and, when the engine can resume as the agent handed to (`handed_to`), its handoffs."""
        ledger.turns = self.turns
        if self.usage is not None:
            ledger.usage = ledger.usage.at_least(self.usage)
        if handed_to and self.agent is not None:
            ledger.handoffs, ledger.active = list(self.handoffs), self.agent


KINDS = ("conversation", "items")
"""What a marker can point at: a `Conversation` (the Claude loop) or a list of input items (an Agents SDK run)."""


def _marker_name() -> str:
    info = activity.info()
    return f"black-box-checkpoints/{info.workflow_id}/{info.workflow_run_id}/{info.activity_id}.json"


class Checkpoints:
    """Saves and restores a black box's conversation through the blob store (sealed when encryption is on)."""

    def __init__(self, blobs: BlobStore) -> None:
        self._blobs = blobs

    async def save(
        self,
        ledger: AgentLedger,
        *,
        conversation: Conversation | None = None,
        items: list[Any] | None = None,
        corrections: int = 0,
    ) -> None:
        """Store the conversation (or the items) and how far `ledger` got; the heartbeat-sized marker that finds
        it again is stored too (durably) and goes out with `ledger`'s heartbeats, starting with one now."""
        if conversation is not None:
            kind, data = "conversation", conversation.model_dump_json().encode()
        else:
            kind, data = "items", json.dumps(items or [], default=str).encode()
        key = await asyncio.to_thread(self._blobs.put, data)
        marker = {kind: key, "turns": ledger.turns, "corrections": corrections}
        marker |= _active(ledger.active or None, ledger.handoffs)
        ledger.resume = await self._keep(marker, ledger.usage)
        ledger.heartbeat()

    async def restore(self) -> ResumePoint | None:
        """The last point an earlier attempt of this activity recorded (None on a first attempt or without one)."""
        marker = await self._marker()
        if marker is None:
            return None
        kind = next(k for k in KINDS if marker.get(k))
        data = await asyncio.to_thread(self._blobs.get, marker[kind])
        return ResumePoint(
            turns=int(marker.get("turns", 0)),
            conversation=Conversation.model_validate_json(data) if kind == "conversation" else None,
            items=json.loads(data) if kind == "items" else None,
            corrections=int(marker.get("corrections", 0)),
            usage=_usage(marker),
            agent=_agent(marker),
            handoffs=_handoffs(marker),
        )

    async def _keep(self, marker: dict[str, Any], usage: Usage | None) -> dict[str, Any]:
        """Store the marker whole; return the heartbeat's copy (handoff reasons are model text: store only)."""
        if activity.in_activity():
            stored = {**marker, "usage": usage.model_dump() if usage is not None else None}
            await asyncio.to_thread(self._blobs.put_object, _marker_name(), json.dumps(stored).encode())
        if "handoffs" in marker:
            return {**marker, "handoffs": [{k: v for k, v in h.items() if k != "reason"} for h in marker["handoffs"]]}
        return marker

    async def _marker(self) -> dict[str, Any] | None:
        """The latest marker of this activity: the stored one, else the last heartbeat's."""
        if not activity.in_activity():
            return None
        try:
            stored = json.loads(await asyncio.to_thread(self._blobs.get_object, _marker_name()))
        except BlobNotFound:
            stored = None
        if isinstance(stored, dict) and _points_somewhere(stored):
            return stored
        return _resume_marker(activity.info().heartbeat_details)


def _points_somewhere(marker: Any) -> bool:
    return isinstance(marker, dict) and any(marker.get(k) for k in KINDS)


def _resume_marker(details: Any) -> dict[str, Any] | None:
    for detail in reversed(list(details or [])):
        if isinstance(detail, dict) and _points_somewhere(detail.get("resume")):
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


def unacted_answer(conversation: Conversation) -> str | None:
    """The text of the last assistant turn when it asked for no tools: a reply paid for and checkpointed whose
    attempt ended before acting on it. Acted on as it stands, never sent back as the last turn (Claude would take
    it as a prefill and continue it) nor asked for again."""
    if not conversation.messages or conversation.messages[-1].role != "assistant" or pending_calls(conversation):
        return None
    return "".join(getattr(b, "text", "") for b in conversation.messages[-1].content)


def pending_items(items: list[Any]) -> list[dict[str, Any]]:
    """Function calls an Agents SDK run's items hold without their output (the round a crash cut off)."""
    answered = {i.get("call_id") for i in items if isinstance(i, dict) and i.get("type") == "function_call_output"}
    return [
        i
        for i in items
        if isinstance(i, dict) and i.get("type") == "function_call" and i.get("call_id") not in answered
    ]
