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

import jsonschema
from pydantic import BaseModel, ValidationError
from temporalio.common import RetryPolicy

from models.conversation import ToolCall
from models.guardrails import GuardrailPolicy
from models.tooling import DEFAULT_MAX_TOOL_CALLS_PER_TURN

if TYPE_CHECKING:
    from tools.deps import ToolDeps


@dataclass(frozen=True)
class CallInfo:
    """What a handler knows about this one call besides its arguments."""

    idempotency_key: str
    """Workflow id + step + call id: the same on every retry, so a side effect happens once."""
    agent: str = ""
    """The name of the agent making the call."""


Handler = Callable[[Any, "ToolDeps", CallInfo], Awaitable[str]]
"""`handler(args, deps, call)`: the validated arguments, the worker's tool dependencies, this call's facts."""


@cache
def _schema_of(args: type[BaseModel]) -> dict[str, Any]:
    # Building a schema costs ~1.2 ms; every call_llm needs every tool's (bench/README.md).
    return args.model_json_schema()


class ToolArgumentsInvalid(ValueError):
    """The arguments do not match the tool's schema; the message lists each problem by its path."""


def default_retry(max_attempts: int = 3) -> RetryPolicy:
    """The retry policy a tool gets unless it declares its own."""
    return RetryPolicy(
        initial_interval=timedelta(milliseconds=500),
        maximum_interval=timedelta(seconds=10),
        maximum_attempts=max_attempts,
    )


@dataclass(frozen=True)
class Tool:
    """One tool: what the model sees (name, description, args schema) and how it runs (handler, policy).

    Python tools carry a pydantic `args` model; MCP tools and pinned tools (rebuilt from a run's pinned
    spec inside a workflow) carry only the JSON `schema`. `handler` is None where a tool cannot run
    (a pinned copy inside a workflow): only its metadata is used there.
    """

    name: str
    description: str
    args: type[BaseModel] | None = None
    handler: Handler | None = None
    effect: Literal["read", "write"] = "write"
    requires_approval: bool = False
    timeout: timedelta = timedelta(seconds=30)
    retry: RetryPolicy = field(default_factory=default_retry)
    schema: dict[str, Any] | None = None
    """The JSON schema of the arguments when there is no `args` model."""
    source: str = "python"
    """Where it comes from: `python` (a module) or `mcp:<server>`."""

    def input_schema(self) -> dict[str, Any]:
        """The JSON schema the model is given for the arguments (a copy: callers may change it)."""
        if self.args is not None:
            return copy.deepcopy(_schema_of(self.args))
        return copy.deepcopy(self.schema or {"type": "object", "properties": {}})

    def validate(self, arguments: dict[str, Any]) -> Any:
        """The validated arguments (the args model, or the plain mapping), or ToolArgumentsInvalid."""
        if self.args is not None:
            try:
                return self.args.model_validate(arguments)
            except ValidationError as exc:
                problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors())
                raise ToolArgumentsInvalid(problems) from None
        errors = sorted(_validator(self.input_schema()).iter_errors(arguments), key=lambda e: list(e.absolute_path))
        if errors:
            raise ToolArgumentsInvalid("; ".join(problem for e in errors for problem in _problems(e)))
        return arguments


def _problems(error: jsonschema.ValidationError) -> list[str]:
    """One line per wrong field, phrased like pydantic's (`field: Field required`), whatever the schema's source."""
    where = ".".join(map(str, error.absolute_path))
    prefix = f"{where}." if where else ""
    if error.validator == "required" and isinstance(error.instance, dict):
        return [f"{prefix}{name}: Field required" for name in error.validator_value if name not in error.instance]
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = set(error.schema.get("properties", {}))
        return [f"{prefix}{name}: Extra inputs are not permitted" for name in error.instance if name not in known]
    return [f"{where or 'arguments'}: {error.message}"]


def _validator(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    return cls(schema)


@dataclass(frozen=True)
class AgentProfile:
    """A named agent: its instructions, the tools it may use, and whether it may change anything."""

    name: str
    instructions: str
    tools: tuple[str, ...]
    read_only: bool = False
    output_schema: dict[str, Any] | None = None
    """When set, the final answer is JSON validated against this JSON Schema (every pattern)."""
    max_turns: int = 10
    """The agent's own turn ceiling when it runs whole as one black box."""
    max_tool_calls_per_turn: int = DEFAULT_MAX_TOOL_CALLS_PER_TURN
    """Tool calls of one model reply that run; the rest go back to the model as errors."""
    guardrails: GuardrailPolicy = field(default_factory=GuardrailPolicy)
    """Circuit breakers and screening (models/guardrails.py)."""
    handoffs: tuple[str, ...] = ()
    """Agents this one may hand the conversation to (a `transfer_to_<agent>` tool each)."""
    handoff_context: Literal["full", "summary", "none"] = "full"
    """What the agent handed to sees: the whole conversation, a summary of it, or only the request."""
    description: str = ""
    """One line shown to the hybrid planner (defaults to the instructions' first line)."""
    model: str | None = None
    """`provider:model` this agent uses; else the run's `model`, else AGENT_MODEL."""
    source: str = "built-in"
    """Where it was declared: `built-in` or the agents file's path."""


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
    args: Any = None
    error: str | None = None
    reason: str | None = None
    """Why it was refused, for metrics: `unknown_tool`, `read_only` or `invalid_arguments`."""


def check_call(registry: Registry, agent: AgentProfile, call: ToolCall) -> ToolCheck:
    """`check_tool_call` for a call as the model made it: arguments it sent as unreadable text are invalid ones."""
    return check_tool_call(registry, agent, call.name, call.arguments, unreadable=call.problem)


def check_tool_call(
    registry: Registry, agent: AgentProfile, name: str, arguments: dict[str, Any], *, unreadable: str | None = None
) -> ToolCheck:
    """Decide whether a call may run: known tool, allowed for this agent, valid arguments (`unreadable`: why the
    model's argument text could not be read; such a call is refused like one with invalid arguments)."""
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
        if unreadable is not None:
            raise ToolArgumentsInvalid(unreadable)
        args = tool.validate(arguments)
    except ToolArgumentsInvalid as exc:
        problems = str(exc)
        return ToolCheck(
            None,
            error=f"Invalid arguments for {name!r}: {problems}. Expected schema: {tool.input_schema()}",
            reason="invalid_arguments",
        )
    return ToolCheck(tool, args)
