"""The public input and result of every agent workflow (docs/runs.md shows both)."""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from models.agents import AgentRef

SUPPORTED_PROVIDERS = ("anthropic", "openai")
"""Providers `call_llm` and `invoke_agent` can reach; `provider:model` strings must name one of these."""

SEVEN_DAYS = 7 * 24 * 3600
MAX_APPROVAL_TIMEOUT_SECONDS = 365 * 24 * 3600
"""31,536,000: the longest an approval request may wait (every number of the input has a range: the gateway
and the workflow refuse what is outside it, naming the field)."""
MAX_RUN_SECONDS = 365 * 24 * 3600
"""`budget.max_seconds` at most a year of working time (approval waits do not count against it)."""
MAX_TOKENS = 10**10
MAX_COST_USD = 1_000_000.0
MAX_APPROVERS = 100


class Strict(BaseModel):
    """Base for user-facing input: unknown fields and wrong types are errors, never coerced."""

    model_config = ConfigDict(extra="forbid", strict=True)


class Budget(Strict):
    """Ceilings for one whole run; whichever is hit first ends it with `budget_exceeded`."""

    max_steps: int = Field(20, ge=1, le=10_000)
    max_tokens: int = Field(200_000, ge=1, le=MAX_TOKENS)
    max_cost_usd: float = Field(5.0, gt=0, le=MAX_COST_USD, allow_inf_nan=False)
    max_seconds: int = Field(1800, ge=1, le=MAX_RUN_SECONDS)


class ApprovalPolicy(Strict):
    """Who may approve risky steps and how long a request waits before it counts as rejected."""

    timeout_seconds: int = Field(SEVEN_DAYS, ge=1, le=MAX_APPROVAL_TIMEOUT_SECONDS)
    approvers: list[Annotated[str, Field(min_length=1, max_length=200)]] = Field(
        default_factory=list, max_length=MAX_APPROVERS
    )
    """Allow-list of approver names; empty means anyone may decide."""


def check_model_name(value: str | None, providers: tuple[str, ...] = SUPPORTED_PROVIDERS) -> str | None:
    """Accept `provider:model` with a provider in `providers` (by default those `call_llm` supports)."""
    if value is None:
        return value
    provider, sep, name = value.partition(":")
    if not sep or not provider or not name:
        raise ValueError(f"must look like 'provider:model', e.g. 'anthropic:claude-sonnet-5-5', got {value!r}")
    if provider not in providers:
        raise ValueError(f"provider {provider!r} is not supported (supported: {', '.join(providers)})")
    return value


class AgentRunInput(Strict):
    """What a user types into `temporal workflow start --input`."""

    prompt: str = Field(min_length=1, max_length=100_000)
    agent: str = Field("assistant", min_length=1)
    model: str | None = None
    """`provider:model`; when absent the worker's `AGENT_MODEL` decides."""
    customer_id: str | None = Field(None, min_length=1, max_length=200)
    """Langfuse's user id for the run's trace, and the `CustomerId` search attribute."""
    session_id: str | None = Field(None, min_length=1, max_length=200)
    """Groups related runs in Langfuse (e.g. one conversation); defaults to the workflow id."""
    budget: Budget = Field(default_factory=Budget)
    approval: ApprovalPolicy = Field(default_factory=ApprovalPolicy)

    @field_validator("model")
    @classmethod
    def _model_names_a_supported_provider(cls, value: str | None) -> str | None:
        return check_model_name(value)

    def agent_refs(self) -> list[AgentRef]:
        """Every agent this input names, by field path: what the worker pins at start and the gateway checks first."""
        return [AgentRef(where="agent", name=self.agent)]


class RunStatus(str, Enum):
    """How a run ended (or, in the `status` query, where it is)."""

    RUNNING = "running"
    WAITING_FOR_APPROVAL = "waiting_for_approval"
    COMPLETED = "completed"
    REJECTED = "rejected"
    APPROVAL_TIMED_OUT = "approval_timed_out"
    BUDGET_EXCEEDED = "budget_exceeded"
    FAILED = "failed"
    STOPPED = "stopped"
    """A guardrail or circuit breaker ended the run; the output names the rule, what was done and what was not."""
    CANCELLED = "cancelled"
    """The run was cancelled (Temporal status Canceled); only the `status` query and `AgentStatus` show it."""


class Usage(BaseModel):
    """What a run has spent so far."""

    llm_calls: int = 0
    tool_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0

    @property
    def total_tokens(self) -> int:
        """Input plus output tokens, the figure `max_tokens` limits."""
        return self.input_tokens + self.output_tokens

    def at_least(self, other: Usage) -> Usage:
        """Field by field the larger: of two snapshots of one growing spend, each field's later value.

        A black box resumes from a checkpoint and from the last heartbeat that got through; either may be the later
        for one field (a tool call counted after the checkpoint, a reply counted after the heartbeat).
        """
        return Usage(
            llm_calls=max(self.llm_calls, other.llm_calls),
            tool_calls=max(self.tool_calls, other.tool_calls),
            input_tokens=max(self.input_tokens, other.input_tokens),
            output_tokens=max(self.output_tokens, other.output_tokens),
            cost_usd=max(self.cost_usd, other.cost_usd),
        )

    def add(self, other: Usage) -> Usage:
        """Sum of two usages (cost rounded to avoid float dust in results)."""
        return Usage(
            llm_calls=self.llm_calls + other.llm_calls,
            tool_calls=self.tool_calls + other.tool_calls,
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cost_usd=round(self.cost_usd + other.cost_usd, 8),
        )


class AgentRunResult(BaseModel):
    """The contract's result, returned by every agent workflow."""

    status: RunStatus
    output: Any
    usage: Usage
    steps: int
    trace_id: str
    limit: str | None = Field(None, exclude_if=lambda v: v is None)
    """The spend limit across runs that stopped the run (`customer C123 month usd`); absent otherwise."""
