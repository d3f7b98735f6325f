"""An agent as a run pins it at start: everything the model is shown and every policy the workflow applies.

The worker resolves an agent's spec once, when a run starts, from what it has loaded (the built-ins, the
agents file, tool modules, MCP servers). The spec is recorded in the run's history and carried across
continue-as-new, so a changed agents file or MCP tool list changes only runs started after it.
Activities receive the spec by digest and read it from the blob store, so history holds it once.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from models.guardrails import GuardrailPolicy
from models.tooling import DEFAULT_MAX_TOOL_CALLS_PER_TURN


class ToolSpec(BaseModel):
    """One tool as pinned: what the model sees and the policy the workflow applies."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str
    input_schema: dict[str, Any]
    effect: Literal["read", "write"]
    requires_approval: bool = False
    timeout_seconds: float = Field(30.0, gt=0)
    max_attempts: int = Field(3, ge=0)
    initial_interval_seconds: float = Field(0.5, gt=0)
    maximum_interval_seconds: float = Field(10.0, gt=0)
    source: str = "python"


HandoffContext = Literal["full", "summary", "none"]
"""What the next agent sees after a handoff: the whole conversation, a summary of it, or only the request."""


class HandoffSpec(BaseModel):
    """An agent the pinned one may hand the conversation to, and how the model is told about it."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str = ""


class AgentSpec(BaseModel):
    """One agent as pinned by a run."""

    model_config = ConfigDict(frozen=True)

    name: str
    description: str = ""
    instructions: str
    model: str | None = None
    tools: list[ToolSpec] = Field(default_factory=list)
    read_only: bool = False
    max_turns: int = Field(10, ge=1)
    max_tool_calls_per_turn: int = Field(DEFAULT_MAX_TOOL_CALLS_PER_TURN, ge=1)
    guardrails: GuardrailPolicy = Field(default_factory=GuardrailPolicy)
    handoffs: list[HandoffSpec] = Field(default_factory=list)
    handoff_context: HandoffContext = "full"
    output_schema: dict[str, Any] | None = None
    source: str = "built-in"

    def digest(self) -> str:
        """SHA-256 of the spec's canonical JSON: the name activities read it back by."""
        return spec_digest(self.model_dump(mode="json"))


def spec_digest(spec: dict[str, Any]) -> str:
    """The digest of a spec's JSON form (sorted keys, no spaces)."""
    canonical = json.dumps(spec, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class AgentRef(BaseModel):
    """(field path, agent name) of one agent a run's input names."""

    where: str
    name: str
    black_box: bool = False
    """It runs whole as a black box (pattern A): the agents it can hand off to must be read-only."""


class ResolveAgentsRequest(BaseModel):
    """Input of the `resolve_agents` local activity."""

    agents: list[AgentRef]
    specialists: bool = False
    """Also pin every agent with an output schema (the hybrid planner's specialists) and the planner."""


class PinnedAgents(BaseModel):
    """The specs a run pinned, by agent name, and their digests (what activities are sent)."""

    specs: dict[str, AgentSpec] = Field(default_factory=dict)
    digests: dict[str, str] = Field(default_factory=dict)
    llm_task_queues: dict[str, str] = Field(default_factory=dict)
    """provider -> the task queue its model calls go to (the worker's LLM_RATE_LIMITS); others: the run's."""
    default_model: str | None = None
    """The worker's AGENT_MODEL when the run started: which provider a call without a model goes to."""

    def llm_task_queue(self, model: str | None) -> str | None:
        """The task queue for a model call on `model` (None: the run's own queue)."""
        provider = (model or self.default_model or "").split(":", 1)[0]
        return self.llm_task_queues.get(provider)

    def spec(self, name: str) -> AgentSpec:
        """The pinned spec of `name` (KeyError naming the pinned agents otherwise)."""
        try:
            return self.specs[name]
        except KeyError:
            raise KeyError(
                f"agent {name!r} is not pinned by this run (pinned: {', '.join(sorted(self.specs))})"
            ) from None
