"""Between a worker's registry and a run's pinned specs: pin at start, rebuild metadata-only tools from a pin.

Pure and deterministic, so workflows use it too: a run recorded before pinning existed pins the
built-in registry inside the workflow, exactly as the `resolve_agents` activity would have.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

from temporalio.common import RetryPolicy

from models.agents import AgentRef, AgentSpec, HandoffSpec, PinnedAgents, ToolSpec
from models.errors import InvalidInput
from tools.registry import AgentProfile, Registry, Tool

PLANNER = "planner"
"""The agent `HybridAgentWorkflow` plans with (stage 1; no tools, answers with plan JSON); pinned with every specialist."""


def tool_spec(tool: Tool) -> ToolSpec:
    """What a run pins of one tool."""
    retry = tool.retry
    return ToolSpec(
        name=tool.name,
        description=tool.description,
        input_schema=tool.input_schema(),
        effect=tool.effect,
        requires_approval=tool.requires_approval,
        timeout_seconds=tool.timeout.total_seconds(),
        max_attempts=retry.maximum_attempts,
        initial_interval_seconds=retry.initial_interval.total_seconds(),
        maximum_interval_seconds=(retry.maximum_interval or timedelta(seconds=10)).total_seconds(),
        source=tool.source,
    )


TRANSFER_PREFIX = "transfer_to_"
"""The tool a model calls to hand the conversation to another agent: `transfer_to_<agent>`."""


def describe_agent(agent: AgentProfile) -> str:
    """An agent's one line (the hybrid planner's list, handoff tools, pinned specs): its description, else its
    instructions' first line."""
    return agent.description or (agent.instructions.strip().splitlines() or [""])[0]


def transfer_tool(handoff: HandoffSpec) -> Tool:
    """The `transfer_to_<agent>` tool that hands the conversation to `handoff`'s agent."""
    return Tool(
        name=f"{TRANSFER_PREFIX}{handoff.name}",
        description=f"Hand the conversation over to agent {handoff.name!r}: {handoff.description}".strip(),
        schema={
            "type": "object",
            "properties": {"reason": {"type": "string", "description": "Why this agent should take over"}},
        },
        effect="read",
        source="handoff",
    )


def transfer_tools(spec: AgentSpec) -> list[Tool]:
    """The `transfer_to_<agent>` tools a pinned agent is offered, one per handoff target."""
    return [transfer_tool(h) for h in spec.handoffs]


def black_box_handoff_problem(pinned: PinnedAgents, names: Iterable[str]) -> str | None:
    """Why agents run as black boxes cannot hand off as pinned, or None: every agent they can reach by handoffs
    must be read-only (nobody approves inside a black box, and a retry repeats at most a turn of its tools)."""
    for name in names:
        for target in reachable_agents(pinned, name):
            if not pinned.specs[target].read_only:
                return (
                    f"agent {name!r} can hand off to {target!r}, which is not read-only: inside a black box "
                    f"(pattern A) handoff targets must be read-only agents (set read_only = true on {target!r}, "
                    f"or run {name!r} in AgentLoopWorkflow)"
                )
    return None


def reachable_agents(pinned: PinnedAgents, name: str) -> list[str]:
    """The pinned agents `name` can hand off to, directly or through others (not `name` itself unless a cycle
    leads back to it), in the order they are found."""
    found: list[str] = []
    frontier = [name]
    while frontier:
        for target in pinned.specs[frontier.pop(0)].handoffs:
            if target.name not in found and target.name in pinned.specs:
                found.append(target.name)
                frontier.append(target.name)
    return found


def agent_spec(registry: Registry, agent: AgentProfile) -> AgentSpec:
    """What a run pins of one agent: its profile and each of its tools."""
    return AgentSpec(
        name=agent.name,
        description=describe_agent(agent),
        instructions=agent.instructions,
        model=agent.model,
        tools=[tool_spec(t) for t in registry.tools_of(agent)],
        read_only=agent.read_only,
        max_turns=agent.max_turns,
        max_tool_calls_per_turn=agent.max_tool_calls_per_turn,
        guardrails=agent.guardrails,
        handoffs=[HandoffSpec(name=n, description=describe_agent(registry.agents[n])) for n in agent.handoffs],
        handoff_context=agent.handoff_context,
        output_schema=agent.output_schema,
        source=agent.source,
    )


def specialist_names(registry: Registry) -> list[str]:
    """Agents the hybrid planner may consult: those that answer with structured output."""
    return sorted(name for name, a in registry.agents.items() if a.output_schema is not None)


def pin(registry: Registry, refs: Iterable[AgentRef], *, specialists: bool = False) -> PinnedAgents:
    """The specs of every named agent (InvalidInput naming the field of an unknown one)."""
    names: list[str] = []
    for ref in refs:
        if ref.name not in registry.agents:
            known = ", ".join(sorted(registry.agents))
            raise InvalidInput(f"{ref.where}: unknown agent {ref.name!r} (known: {known})")
        names.append(ref.name)
    if specialists:
        names += [PLANNER, *specialist_names(registry)]
    for name in names:  # handoff targets, and theirs: a run may end with any agent it can reach
        for target in registry.agents[name].handoffs:
            if target not in registry.agents:
                raise InvalidInput(f"agent {name!r}: unknown handoff target {target!r}")
            if target not in names:
                names.append(target)
    for name in list(names):  # screening agents are pinned with the agents they screen for
        screener = registry.agents[name].guardrails.screening_agent
        if screener is not None and screener not in names:
            if screener not in registry.agents:
                raise InvalidInput(f"agent {name!r}: unknown screening_agent {screener!r}")
            names.append(screener)
    specs = {name: agent_spec(registry, registry.agents[name]) for name in dict.fromkeys(names)}
    return PinnedAgents(specs=specs, digests={name: spec.digest() for name, spec in specs.items()})


def profile_of(spec: AgentSpec) -> AgentProfile:
    """The agent profile a pinned spec describes."""
    return AgentProfile(
        name=spec.name,
        instructions=spec.instructions,
        tools=tuple(t.name for t in spec.tools),
        read_only=spec.read_only,
        output_schema=spec.output_schema,
        max_turns=spec.max_turns,
        max_tool_calls_per_turn=spec.max_tool_calls_per_turn,
        guardrails=spec.guardrails,
        handoffs=tuple(h.name for h in spec.handoffs),
        handoff_context=spec.handoff_context,
        description=spec.description,
        model=spec.model,
        source=spec.source,
    )


def tool_of(spec: ToolSpec) -> Tool:
    """A metadata-only tool (no handler) from its pinned spec: for checks and for what the model is shown."""
    return Tool(
        name=spec.name,
        description=spec.description,
        schema=spec.input_schema,
        effect=spec.effect,
        requires_approval=spec.requires_approval,
        timeout=timedelta(seconds=spec.timeout_seconds),
        retry=RetryPolicy(
            initial_interval=timedelta(seconds=spec.initial_interval_seconds),
            maximum_interval=timedelta(seconds=spec.maximum_interval_seconds),
            maximum_attempts=spec.max_attempts,
        ),
        source=spec.source,
    )


def registry_of(pinned: PinnedAgents) -> Registry:
    """A registry holding exactly the pinned agents and their tools, as the run saw them at start."""
    registry = Registry()
    for spec in pinned.specs.values():
        for tool in spec.tools:
            registry.tools.setdefault(tool.name, tool_of(tool))
        registry.agents[spec.name] = profile_of(spec)
    return registry
