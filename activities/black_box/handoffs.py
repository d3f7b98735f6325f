"""Handoffs inside a black box: the pinned agents one run can pass its conversation to, and what each switch leaves.

The workflow sends the digests of every pinned agent the first one can reach (`InvokeAgentRequest.handoff_specs`);
the roster reads their specs from the spec store, so a retry on any worker hands off to the agents the run
pinned. Each switch is recorded three ways: on the run's progress stream (a `handoff` event), in the trace
(a `handoff <from> -> <to>` span under the activity's) and in the result (`InvokeAgentResult.handoffs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from activities.progress_publisher import publish_event
from models.agents import HandoffSpec
from models.blackbox import BlackBoxHandoff
from models.conversation import Conversation, ToolResultBlock, ToolUseBlock
from telemetry.tracing import tracer
from tools.pinning import TRANSFER_PREFIX, transfer_tool
from tools.registry import AgentProfile, Tool

if TYPE_CHECKING:
    from activities.agent_specs import AgentResolver
    from activities.black_box.progress import AgentProgress


@dataclass(frozen=True)
class BlackBoxAgent:
    """One agent a black box can run as: its pinned profile and the registry tools it is shown."""

    profile: AgentProfile
    definitions: list[Tool]


class HandoffRoster:
    """The agents one black box may hand off to, resolved lazily from their pinned digests."""

    def __init__(self, resolver: AgentResolver, digests: dict[str, str]) -> None:
        self._resolver = resolver
        self._digests = dict(digests)
        self._resolved: dict[str, BlackBoxAgent] = {}

    def reachable(self, name: str) -> bool:
        """Whether the run pinned `name` for this black box."""
        return name in self._digests

    async def agent(self, name: str) -> BlackBoxAgent:
        """The pinned agent `name` (KeyError when this black box was not given it)."""
        if name not in self._resolved:
            profile, tools = await self._resolver.resolve(name, self._digests[name])
            self._resolved[name] = BlackBoxAgent(profile, tools)
        return self._resolved[name]

    async def everyone(self) -> dict[str, BlackBoxAgent]:
        """Every agent this black box can reach, by name."""
        return {name: await self.agent(name) for name in self._digests}

    async def transfer_tools(self, agent: AgentProfile) -> list[Tool]:
        """The `transfer_to_<agent>` tools `agent` is offered: one per handoff target the run pinned."""
        offered = [name for name in agent.handoffs if self.reachable(name)]
        return [
            transfer_tool(HandoffSpec(name=name, description=(await self.agent(name)).profile.description))
            for name in offered
        ]


def refusal(source: AgentProfile, target: str) -> str | None:
    """Why `source` may not hand off to `target` (the model reads it), or None when it may."""
    if target in source.handoffs:
        return None
    offered = ", ".join(source.handoffs) or "none"
    return f"Error: agent {source.name!r} cannot hand off to {target!r} (it can hand off to: {offered})."


def target_of(tool_name: str) -> str | None:
    """The agent a `transfer_to_<agent>` call names, or None for any other tool."""
    return tool_name.removeprefix(TRANSFER_PREFIX) if tool_name.startswith(TRANSFER_PREFIX) else None


def record_handoff(progress: AgentProgress, source: AgentProfile, target: str, reason: str) -> BlackBoxHandoff:
    """Note one handoff in the result, on the progress stream and in the trace; the new agent is active from now."""
    handoff = BlackBoxHandoff(
        source=source.name, target=target, context=source.handoff_context, reason=reason, turn=progress.turns
    )
    progress.handoffs.append(handoff)
    progress.active = target
    progress.last = f"handed off to {target}"
    attributes = {"handoff.from": source.name, "handoff.to": target, "handoff.context": source.handoff_context}
    with tracer().start_as_current_span(f"handoff {source.name} -> {target}", attributes=attributes):
        pass
    publish_event("handoff", agent=source.name, target=target, context=source.handoff_context, turn=progress.turns)
    progress.heartbeat()
    return handoff


def summary_opening(prompt: str, source: str, reason: str, conversation: Conversation) -> str:
    """What a `summary` handoff gives the next agent: the request, why it was handed over, the work so far and the
    last thing the previous agent said (the wording pattern B uses)."""
    done: list[str] = []
    calls: dict[str, ToolUseBlock] = {}
    last_text = ""
    for message in conversation.messages:
        for block in message.content:
            if isinstance(block, ToolUseBlock):
                calls[block.id] = block
            elif isinstance(block, ToolResultBlock) and block.tool_use_id in calls:
                call = calls[block.tool_use_id]
                if target_of(call.name) is None:
                    mark = "error" if block.is_error else "ok"
                    done.append(f"{_call_text(call)} -> {mark}: {_short(block.content)}")
            elif message.role == "assistant" and block.type == "text" and block.text.strip():
                last_text = block.text
    work = "; ".join(done[-10:]) or "nothing yet"
    return (
        f"{prompt}\n\n(Handed over by agent {source}: {reason}. Work so far: {work}. "
        f"Its last message: {last_text or '(none)'})"
    )


def _call_text(call: ToolUseBlock, limit: int = 120) -> str:
    text = f"{call.name}({', '.join(f'{k}={v!r}' for k, v in call.arguments.items())})"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _short(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
