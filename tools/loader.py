"""A worker's registry, loaded at start: built-ins, TOOL_MODULES tools, MCP servers' tools and the agents file.

Every problem is collected and reported at once (`AgentsFileInvalid`), so one start-up shows all of them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType

from config.settings import Settings
from models.errors import AgentsFileInvalid
from tools.agents_file import AgentsFile, read_agents_file
from tools.agents_registry import add_agents, add_mcp_tools, check_references
from tools.catalog import build_registry, planner_agent
from tools.mcp_servers import McpManager, McpServer
from tools.pinning import PLANNER
from tools.registry import Registry, Tool


@dataclass
class LoadedTools:
    """The worker's registry and the MCP sessions behind its MCP tools (close them at shutdown)."""

    registry: Registry
    mcp: McpManager = field(default_factory=McpManager)
    agents_file: AgentsFile | None = None

    async def close(self) -> None:
        """Close every MCP session."""
        await self.mcp.close()


async def load_registry(settings: Settings, *, replace_built_ins: bool = False) -> LoadedTools:
    """The registry `settings` describe; AgentsFileInvalid lists every problem (and nothing is left running).

    `replace_built_ins`: an agent the agents file defines replaces the built-in agent of that name instead of
    being an error (the test kit and regression evals, to try changed instructions of a built-in agent).
    """
    registry = build_registry()
    problems = add_module_tools(registry, settings.tool_modules)
    loaded = LoadedTools(registry)
    if settings.agents_file:
        parsed = read_agents_file(settings.agents_file)
        loaded.agents_file = parsed
        if replace_built_ins:
            for name in parsed.agents:
                registry.agents.pop(name, None)
        loaded.mcp = McpManager([McpServer(n, c, parsed.folder, settings.environ) for n, c in parsed.servers.items()])
        for server, problem in (await loaded.mcp.start()).items():
            parsed.problem(f"mcp_servers.{server}", f"MCP server {server!r} {problem}")
        add_mcp_tools(parsed, registry, loaded.mcp.tools)
        started = {s for s in loaded.mcp.tools}
        add_agents(parsed, registry, started)
        check_references(parsed, registry)
        problems += parsed.problems
    registry.agents[PLANNER] = planner_agent(registry)  # its list of specialists includes the file's agents
    if problems:
        await loaded.close()
        raise AgentsFileInvalid(problems)
    return loaded


def add_module_tools(registry: Registry, modules: tuple[str, ...]) -> list[str]:
    """Import each module and declare the `Tool`s it defines (`@tool` functions); the problems, one per line."""
    problems: list[str] = []
    origin = {name: "built-in" for name in registry.tools}
    for name in modules:
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # a missing module, a syntax error, a bad @tool declaration
            problems.append(f"TOOL_MODULES: cannot import module {name!r}: {type(exc).__name__}: {exc}")
            continue
        for declared in module_tools(module):
            if registry.tools.get(declared.name) is declared:
                continue  # imported from a module already registered
            if declared.name in registry.tools:
                problems.append(
                    f"TOOL_MODULES: module {name!r}: tool {declared.name!r} is defined twice "
                    f"(also {origin[declared.name]})"
                )
                continue
            registry.add_tool(declared)
            origin[declared.name] = f"module {name!r}"
    return problems


def module_tools(module: ModuleType) -> list[Tool]:
    """The `Tool` instances a module defines at top level, in definition order."""
    return [value for value in vars(module).values() if isinstance(value, Tool)]
