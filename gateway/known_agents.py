"""The agents the workers can run, as the gateway knows them: `POST /v1/runs` refuses an unknown one with 422.

How the gateway knows the workers' registry: it reads the same `AGENTS_FILE` the workers read, for the
agents' names and the few properties a start depends on (read-only, handoffs), and nothing else: no
`TOOL_MODULES` imported and no MCP server started. A worker's agents are exactly the built-in ones plus
those of its agents file (tool modules declare tools, never agents, and a worker whose file or servers
have any problem refuses to start), so the same file gives the same names. Inputs name agents, never
tools, so the gateway needs no tool, and it runs none of the users' code.

Why not ask the workers: a catalogue the workers publish (a workflow per task queue, the blob store)
would be one more long-lived run with its own history, or objects that outlive the workers that wrote
them, and the gateway could not answer while no worker polls, when a queued start is still legitimate.
Reading the file needs nothing running. docker-compose.yml mounts one folder, read-only, at `/agents`
in the workers and the gateway, with the same `AGENTS_FILE`, so both read one file.

The worker stays the authority: every run still pins its agents at start (`resolve_agents`) and fails
naming the field when its worker does not know one (a gateway and workers given different files).
The file is read again when it changes, so an edit reaches the gateway without a restart; a changed
file with problems is logged and the agents read before are kept (the workers refuse that file too).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from gateway.http import ApiError
from models.errors import AgentsFileInvalid
from models.run import AgentRunInput
from tools.agents_file import AgentsFile, read_agents_file
from tools.agents_registry import agent_profile, check_references
from tools.catalog import REGISTRY
from tools.pinning import black_box_handoff_problem, pin
from tools.registry import Registry

log = logging.getLogger("gateway")

NO_FILE_HINT = (
    " (built-in agents only: this gateway has no AGENTS_FILE; give it the workers' agents file to start their own)"
)


def names_only_registry(parsed: AgentsFile | None) -> Registry:
    """The built-in agents and the file's, without tools; the file's problems (as far as it alone shows) in it."""
    registry = Registry(tools=dict(REGISTRY.tools), agents=dict(REGISTRY.agents))
    if parsed is None:
        return registry
    for name in parsed.agents:
        if name in registry.agents:
            parsed.problem(f"agents.{name}", f"agent {name!r} is defined twice (also {registry.agents[name].source})")
            continue
        # Tools are resolved by the workers (TOOL_MODULES, MCP servers); a start never depends on them.
        registry.agents[name] = agent_profile(parsed, name, tools=())
    check_references(parsed, registry)
    return registry


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_ino, status.st_mtime_ns, status.st_size


@dataclass
class KnownAgents:
    """The agents of the built-in registry and of `AGENTS_FILE` (None: the built-ins only), read again on change."""

    path: Path | None
    registry: Registry
    stamp: tuple[int, int, int] | None = None

    @classmethod
    def load(cls, agents_file: str | None) -> KnownAgents:
        """Read the file; AgentsFileInvalid (a ConfigError: the gateway does not start) on a problem in it."""
        if not agents_file:
            return cls(None, names_only_registry(None))
        path = Path(agents_file)
        stamp = _stamp(path)
        parsed = read_agents_file(path)
        registry = names_only_registry(parsed)
        if parsed.problems:
            raise AgentsFileInvalid(parsed.problems)
        return cls(path, registry, stamp)

    def current(self) -> Registry:
        """The registry, read again first when the file changed since (kept as it was if the new file has problems)."""
        if self.path is None or (stamp := _stamp(self.path)) == self.stamp:
            return self.registry
        self.stamp = stamp
        parsed = read_agents_file(self.path)
        registry = names_only_registry(parsed)
        if parsed.problems:
            log.warning(
                "AGENTS_FILE changed but has problems; still checking runs against the agents read before:\n  %s",
                "\n  ".join(parsed.problems),
            )
        else:
            log.info("AGENTS_FILE changed: %d agents known", len(registry.agents))
            self.registry = registry
        return self.registry

    def check(self, request: AgentRunInput) -> None:
        """422 naming the field (`input.steps.1.agent`) when the input names an agent the workers would refuse."""
        registry = self.current()
        refs = request.agent_refs()
        for ref in refs:
            if ref.name not in registry.agents:
                known = ", ".join(sorted(registry.agents))
                hint = NO_FILE_HINT if self.path is None else ""
                field = f"input.{ref.where}"
                raise ApiError(422, f"invalid input: {field}: unknown agent {ref.name!r}; known: {known}{hint}", field)
        pinned = pin(registry, refs)  # as the workers' `resolve_agents` pins them: the same rules, the same answer
        for ref in refs:
            if ref.black_box and (problem := black_box_handoff_problem(pinned, [ref.name])):
                field = f"input.{ref.where}"
                raise ApiError(422, f"invalid input: {field}: {problem}", field)
