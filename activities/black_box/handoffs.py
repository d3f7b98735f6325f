"""Handoffs inside a black box: the pinned agents one run can pass its conversation to, and what each switch leaves.

The workflow sends the digests of every pinned agent the first one can reach (`InvokeAgentRequest.handoff_specs`);
the roster reads their specs from the spec store, so a retry on any worker hands off to the agents the run
pinned. What a switch may do and what the next agent is given are tools/handoffs.py's, as in the loop. Each
switch is recorded three ways: on the run's progress stream (a `handoff` event), in the trace
(a `handoff <from> -> <to>` span under the activity's) and in the result (`InvokeAgentResult.handoffs`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from activities.progress_publisher import publish_event
from models.agents import HandoffSpec
from models.blackbox import BlackBoxHandoff
from telemetry.tracing import handoff_span
from tools.pinning import transfer_tool
from tools.registry import AgentProfile, Tool

if TYPE_CHECKING:
    from activities.agent_specs import AgentResolver
    from activities.black_box.ledger import AgentLedger


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


def record_handoff(ledger: AgentLedger, source: AgentProfile, target: str, reason: str) -> BlackBoxHandoff:
    """Note one handoff in the result, on the progress stream and in the trace; the new agent is active from now."""
    handoff = BlackBoxHandoff(
        source=source.name, target=target, context=source.handoff_context, reason=reason, turn=ledger.turns
    )
    ledger.handoffs.append(handoff)
    ledger.active = target
    ledger.last = f"handed off to {target}"
    handoff_span(source.name, target, source.handoff_context)
    publish_event("handoff", agent=source.name, target=target, context=source.handoff_context, turn=ledger.turns)
    ledger.heartbeat()
    return handoff
