"""The engine protocol of pattern A, what one run gives an engine (`EngineRun`), and the registry tools it may call.

Both engines apply the one agent-loop policy the pattern-B loop applies: tools/next_step.py after each reply,
tools/final_answer.py on the final answer, tools/handoffs.py on each handoff, models/budget.py's `input_estimate`
before each call, the providers' error classification and `llm_generation` tracing. They differ only where their
SDK forces it, and say so where they do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from activities.black_box.checkpoint import Checkpoints
from activities.black_box.handoffs import HandoffRoster
from activities.black_box.ledger import AgentLedger
from activities.tool_executor import ToolExecutor
from models.blackbox import InvokeAgentRequest, InvokeAgentResult
from models.conversation import ToolCall, ToolOutcome
from models.guardrails import GuardrailPolicy
from telemetry.metrics import activity_meter, record_guardrail_rejection
from tools.guardrails import screen_tool_output
from tools.registry import AgentProfile, Tool


@dataclass(frozen=True)
class EngineRun:
    """One whole agent run as `invoke_agent` hands it to an engine."""

    agent: AgentProfile
    """The pinned agent the request names (handoffs may pass the conversation on from it)."""
    request: InvokeAgentRequest
    model: str
    """`provider:model` the run routed to (an agent handed to may name its own)."""
    max_turns: int
    """Model calls this run may make: the request's, capped by the agent's own."""
    ledger: AgentLedger
    tools: BlackBoxTools
    checkpoints: Checkpoints | None = None
    """Turn-level resume (None: a retry starts the agent from its first turn)."""
    roster: HandoffRoster | None = None
    """The agents it may hand off to (activities/black_box/handoffs.py); None: it cannot hand off."""


class AgentEngine(Protocol):
    """Runs one whole agent in-process: the OpenAI Agents SDK or the Claude tool loop."""

    async def run(self, run: EngineRun) -> InvokeAgentResult:
        """Run until the agent answers, a breaker or the allowance stops it, or it reaches `max_turns`; raise
        `ApplicationError` on provider failure (classified for Temporal's retry policy)."""
        ...


@dataclass(frozen=True)
class BlackBoxTools:
    """The worker's `ToolExecutor` bound to one agent run: its agent's policy, its idempotency keys, its ledger."""

    executor: ToolExecutor
    agent: AgentProfile
    definitions: list[Tool]
    """The agent's tools as the run pinned them: what the model is shown."""
    key_prefix: str
    """Workflow id and the run's label; each call's key adds the model's call id."""
    ledger: AgentLedger

    async def run(self, call: ToolCall) -> ToolOutcome:
        """Every refusal and failure is an error result for the model, as in pattern B; none raises."""
        outcome = await self.executor.run(
            call, idempotency_key=f"{self.key_prefix}:{call.id}", on_failure="report", agent=self.agent
        )
        self.ledger.record_tool(call.name, outcome.is_error)
        return outcome


def screened(content: str, policy: GuardrailPolicy) -> tuple[str, str | None]:
    """A tool output as the model is shown it, and the rule it broke: `screen_tool_output`, each flag counted."""
    shown, flagged = screen_tool_output(content, policy)
    if flagged is not None:
        record_guardrail_rejection(activity_meter(), reason=f"tool_output:{flagged}")
    return shown, flagged


def screened_outcome(outcome: ToolOutcome, policy: GuardrailPolicy) -> ToolOutcome:
    """A tool outcome as the model is shown it: marked or withheld when it reads like instructions (`screened`)."""
    content, flagged = screened(outcome.content, policy)
    return outcome.model_copy(update={"content": content}) if flagged else outcome
