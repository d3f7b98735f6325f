"""The agents file's tables turned into registry agents: their tools resolved, their references checked.

The workers declare the agents with their tools (`tools/loader.py`); the gateway declares the same agents
without tools (`gateway/known_agents.py`), from the same `agent_profile`.
"""

from __future__ import annotations

from tools.agents_file import NAME, AgentsFile, AgentTable
from tools.mcp_config import SEPARATOR
from tools.registry import AgentProfile, Registry, Tool


def resolve_tools(
    parsed: AgentsFile, name: str, agent: AgentTable, registry: Registry, started: set[str]
) -> tuple[str, ...] | None:
    """The registry names of an agent's `tools` (`mcp:SERVER` = all, `mcp:SERVER/TOOL` = one), or None on a problem.

    A server in `parsed` that did not start has its own problem already: its agents are skipped quietly.
    """
    where = f"agents.{name}"
    resolved: dict[str, None] = {}  # ordered, each name once
    ok = True
    for entry in agent.tools:
        if not entry.startswith("mcp:"):
            if entry in registry.tools and not registry.tools[entry].source.startswith("mcp:"):
                resolved[entry] = None
                continue
            known = ", ".join(sorted(t for t, d in registry.tools.items() if not d.source.startswith("mcp:")))
            parsed.problem(where, f"agent {name!r}: unknown tool {entry!r} (known: {known}; MCP tools: mcp:SERVER)")
            ok = False
            continue
        server, _, tool = entry.removeprefix("mcp:").partition("/")
        if server not in parsed.servers:
            parsed.problem(where, f"agent {name!r}: tool {entry!r} names unknown MCP server {server!r}")
            ok = False
            continue
        if server not in started:
            ok = False
            continue
        prefix = f"{server}{SEPARATOR}"
        of_server = [t for t, declared in registry.tools.items() if declared.source == f"mcp:{server}"]
        if not tool:
            resolved.update(dict.fromkeys(of_server))
        elif prefix + tool in of_server:
            resolved[prefix + tool] = None
        else:
            listed = ", ".join(t.removeprefix(prefix) for t in of_server) or "none"
            parsed.problem(where, f"agent {name!r}: MCP server {server!r} has no tool {tool!r} (it lists: {listed})")
            ok = False
    return tuple(resolved) if ok else None


def add_agents(parsed: AgentsFile, registry: Registry, started: set[str]) -> None:
    """Declare the file's agents in `registry` (their tools resolved); each problem is recorded, not raised."""
    for name, table in parsed.agents.items():
        if name in registry.agents:
            where = registry.agents[name].source
            parsed.problem(f"agents.{name}", f"agent {name!r} is defined twice (also {where})")
            continue
        tools = resolve_tools(parsed, name, table, registry, started)
        if tools is None or (table.output_schema is not None and name not in parsed.output_schemas):
            continue
        registry.add_agent(agent_profile(parsed, name, tools))


def agent_profile(parsed: AgentsFile, name: str, tools: tuple[str, ...]) -> AgentProfile:
    """The profile the file's `[agents.NAME]` table declares, with its tools resolved (the workers' and the gateway's)."""
    table = parsed.agents[name]
    return AgentProfile(
        name=name,
        instructions=table.instructions,
        tools=tools,
        read_only=table.read_only,
        output_schema=parsed.output_schemas.get(name),
        max_turns=table.max_turns,
        max_tool_calls_per_turn=table.max_tool_calls_per_turn,
        guardrails=table.guardrails,
        handoffs=tuple(table.handoffs),
        handoff_context=table.handoff_context,
        description=table.description,
        model=table.model,
        source=str(parsed.path),
    )


def check_references(parsed: AgentsFile, registry: Registry) -> None:
    """Handoff targets and screening agents the file's agents name must exist (in the file or built in)."""
    known = ", ".join(sorted(registry.agents))
    for name, table in parsed.agents.items():
        where = f"agents.{name}"
        for target in table.handoffs:
            if target not in registry.agents and target not in parsed.agents:
                parsed.problem(where, f"agent {name!r}: unknown handoff target {target!r} (known: {known})")
        screener = table.guardrails.screening_agent
        if screener is not None and screener not in registry.agents and screener not in parsed.agents:
            parsed.problem(where, f"agent {name!r}: unknown screening_agent {screener!r} (known: {known})")


def add_mcp_tools(parsed: AgentsFile, registry: Registry, tools: dict[str, list[Tool]]) -> None:
    """Declare each started server's tools; a name that is already taken (or too long) is a problem."""
    for server, declared in tools.items():
        for tool in declared:
            if not NAME.match(tool.name):
                parsed.problem(
                    f"mcp_servers.{server}",
                    f"MCP server {server!r}: tool name {tool.name!r} must match {NAME.pattern} "
                    "(model-facing names are <server>__<tool>; shorten the server's name)",
                )
            elif tool.name in registry.tools:
                parsed.problem(
                    f"mcp_servers.{server}",
                    f"MCP server {server!r}: tool {tool.name!r} is defined twice (also {registry.tools[tool.name].source})",
                )
            else:
                registry.add_tool(tool)
