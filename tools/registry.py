"""Tool and agent declarations, plus the pure checks that run before any tool executes.

Workflows import this module for metadata (schemas, policies); handlers only ever run inside
activities, through `activities.tool_executor.ToolExecutor` (`run_tool`, and black-box agents).
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ValidationError
from temporalio.common import RetryPolicy

if TYPE_CHECKING:
    from tools.deps import ToolDeps


@dataclass(frozen=True)
class CallInfo:
    """What a handler knows about this one call besides its arguments."""

    idempotency_key: str
    """Workflow id + step + call id: the same on every retry, so a side effect happens once."""


Handler = Callable[[Any, "ToolDeps", CallInfo], Awaitable[str]]
"""`handler(args, deps, call)`: the validated arguments, the worker's tool dependencies, this call's facts."""


@cache
def _schema_of(args: type[BaseModel]) -> dict[str, Any]:
    # Building a schema costs ~1.2 ms; every call_llm needs every tool's (bench/README.md).
    return args.model_json_schema()


@dataclass(frozen=True)
class Tool:
    """One tool: what the model sees (name, description, args schema) and how it runs (handler, policy)."""

    name: str
    description: str
    args: type[BaseModel]
    handler: Handler
    effect: Literal["read", "write"]
    requires_approval: bool = False
    timeout: timedelta = timedelta(seconds=30)
    retry: RetryPolicy = field(
        default_factory=lambda: RetryPolicy(
            initial_interval=timedelta(milliseconds=500), maximum_interval=timedelta(seconds=10), maximum_attempts=3
        )
    )

    def input_schema(self) -> dict[str, Any]:
        """The JSON schema the model is given for the arguments (a copy: callers may change it)."""
        return copy.deepcopy(_schema_of(self.args))


@dataclass(frozen=True)
class AgentProfile:
    """A named agent: its instructions, the tools it may use, and whether it may change anything."""

    name: str
    instructions: str
    tools: tuple[str, ...]
    read_only: bool = False
    output: type[BaseModel] | None = None
    """When set, the final answer is JSON validated by this model (black-box agents)."""
    max_turns: int = 10
    """The agent's own turn ceiling when it runs whole as one black box."""


@dataclass
class Registry:
    """All tools and agents a worker knows."""

    tools: dict[str, Tool] = field(default_factory=dict)
    agents: dict[str, AgentProfile] = field(default_factory=dict)

    def add_tool(self, tool: Tool) -> Tool:
        """Declare a tool; names are unique."""
        if tool.name in self.tools:
            raise ValueError(f"tool {tool.name!r} is declared twice")
        self.tools[tool.name] = tool
        return tool

    def add_agent(self, agent: AgentProfile) -> AgentProfile:
        """Declare an agent; every tool it names must already be declared."""
        missing = [t for t in agent.tools if t not in self.tools]
        if missing:
            raise ValueError(f"agent {agent.name!r} names unknown tools: {missing}")
        self.agents[agent.name] = agent
        return agent

    def agent(self, name: str) -> AgentProfile:
        """The agent called `name`, or a KeyError naming the known ones."""
        try:
            return self.agents[name]
        except KeyError:
            raise KeyError(f"unknown agent {name!r} (known: {', '.join(sorted(self.agents))})") from None

    def tools_of(self, agent: AgentProfile) -> list[Tool]:
        """The tools an agent may call, in declaration order."""
        return [self.tools[name] for name in agent.tools]


@dataclass(frozen=True)
class ToolCheck:
    """The verdict on a tool call before it runs: the tool and its validated arguments, or an error for the model."""

    tool: Tool | None
    args: BaseModel | None = None
    error: str | None = None
    reason: str | None = None
    """Why it was refused, for metrics: `unknown_tool`, `read_only` or `invalid_arguments`."""


def check_tool_call(registry: Registry, agent: AgentProfile, name: str, arguments: dict[str, Any]) -> ToolCheck:
    """Decide whether a call may run: known tool, allowed for this agent, valid arguments."""
    available = ", ".join(agent.tools)
    if name not in agent.tools:
        return ToolCheck(None, error=f"Unknown tool {name!r}. Available tools: {available}.", reason="unknown_tool")
    tool = registry.tools[name]
    if tool.effect == "write" and agent.read_only:
        return ToolCheck(
            None,
            error=f"Tool {name!r} changes data and agent {agent.name!r} is read-only. Available tools: {available}.",
            reason="read_only",
        )
    try:
        args = tool.args.model_validate(arguments)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors())
        return ToolCheck(
            None,
            error=f"Invalid arguments for {name!r}: {problems}. Expected schema: {tool.input_schema()}",
            reason="invalid_arguments",
        )
    return ToolCheck(tool, args)
