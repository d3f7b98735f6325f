"""Input of `BlackBoxAgentWorkflow` and the `invoke_agent` activity's contract (pattern A)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from models.agents import AgentRef, HandoffContext
from models.budget import Allowance
from models.llm import DEFAULT_MAX_OUTPUT_TOKENS
from models.run import AgentRunInput, Strict, Usage

DEFAULT_MAX_TURNS = 10
"""Turns a black-box agent gets unless its own profile allows fewer."""


class AgentStep(Strict):
    """One black-box agent run within a sequence or fan-out."""

    agent: str = Field(min_length=1)
    prompt: str = Field(min_length=1, max_length=100_000)


class BlackBoxInput(AgentRunInput):
    """The contract's input plus the steps to run; with no steps the single `agent` runs `prompt`."""

    steps: list[AgentStep] = Field(default_factory=list, max_length=50)
    parallel: bool = False
    approval_between_steps: bool = False
    max_concurrency: int = Field(4, ge=1, le=50)
    """How many black boxes run at once when `parallel` is set."""

    def planned_steps(self) -> list[AgentStep]:
        """The steps to run: the given ones, or the single agent with the prompt."""
        return list(self.steps) or [AgentStep(agent=self.agent, prompt=self.prompt)]

    def agent_refs(self) -> list[AgentRef]:
        """The agent of each planned step (`agent` only when there are no `steps`), each run whole as a black box."""
        where = "steps.{}.agent" if self.steps else "agent"
        return [
            AgentRef(where=where.format(i), name=s.agent, black_box=True) for i, s in enumerate(self.planned_steps())
        ]


class InvokeAgentRequest(BaseModel):
    """One whole agent run: which agent, what to do, on which model, within how many turns."""

    agent: str
    spec: str | None = None
    """Digest of the agent spec the run pinned; None: the worker's own agent of that name."""
    prompt: str
    model: str | None = None
    max_turns: int = Field(DEFAULT_MAX_TURNS, ge=1)
    max_output_tokens: int = Field(DEFAULT_MAX_OUTPUT_TOKENS, ge=1)
    label: str = ""
    """Where this run sits in the workflow (e.g. `step 2`); part of tool idempotency keys."""
    allowance: Allowance | None = None
    """The branch's share of what the run has left, enforced before every model call (None: runs recorded before)."""
    progress: bool = False
    """Publish turns and text deltas on the run's progress stream (False in runs recorded before streams)."""
    handoff_specs: dict[str, str] = Field(default_factory=dict)
    """Digests of the pinned agents this one can reach by handoffs, by name (empty: it cannot hand off)."""


class BlackBoxHandoff(BaseModel):
    """One handoff inside a black box: who passed the conversation to whom, with what context, at which turn."""

    source: str
    target: str
    context: HandoffContext
    reason: str = ""
    turn: int = 0
    """Turns the black box had taken when the handoff happened."""


class InvokeAgentResult(BaseModel):
    """What a black box produced: its final output, what it spent, how many turns it took."""

    agent: str
    model: str
    output: Any = None
    """Final text, or the agent's structured output as a JSON object."""
    usage: Usage
    """Spend of every attempt of this activity, failed ones included: the workflow counts it all."""
    turns: int
    stopped: str | None = None
    """Why the agent stopped before answering (its turn ceiling or its allowance), or None when it answered."""
    rule: str | None = None
    """The guardrail that stopped it (`max_repeated_calls`, ...): the run ends `stopped`, not `budget_exceeded`."""
    answered_by: str | None = None
    """The agent that had the conversation at the end (after handoffs); None: `agent` itself."""
    handoffs: list[BlackBoxHandoff] = Field(default_factory=list)
    """Every handoff inside this black box, in order."""
