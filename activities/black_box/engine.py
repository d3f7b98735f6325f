"""The engine protocol of pattern A, and the registry tools one black-box run may call."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from activities.black_box.checkpoint import Checkpoints
from activities.black_box.handoffs import HandoffRoster
from activities.black_box.progress import AgentProgress
from activities.tool_executor import ToolExecutor
from models.blackbox import InvokeAgentRequest, InvokeAgentResult
from models.conversation import ToolCall, ToolOutcome
from models.guardrails import GuardrailPolicy
from telemetry.metrics import activity_meter, record_guardrail_rejection
from tools.guardrails import screen_tool_output
from tools.registry import AgentProfile, Tool


class AgentEngine(Protocol):
    """Runs one whole agent in-process: the OpenAI Agents SDK or the Claude tool loop."""

    async def run(
        self,
        *,
        agent: AgentProfile,
        request: InvokeAgentRequest,
        model: str,
        max_turns: int,
        progress: AgentProgress,
        tools: BlackBoxTools,
        checkpoints: Checkpoints | None = None,
        roster: HandoffRoster | None = None,
    ) -> InvokeAgentResult:
        """Run until the agent answers or reaches `max_turns`; raise `ApplicationError` on provider failure.

        With a `roster`, the agent may hand the conversation to the agents in it (activities/black_box/handoffs.py).
        """
        ...


@dataclass(frozen=True)
class BlackBoxTools:
    """The worker's `ToolExecutor` bound to one agent run: its agent's policy, its idempotency keys, its progress."""

    executor: ToolExecutor
    agent: AgentProfile
    definitions: list[Tool]
    """The agent's tools as the run pinned them: what the model is shown."""
    key_prefix: str
    """Workflow id and the run's label; each call's key adds the model's call id."""
    progress: AgentProgress

    async def run(self, call: ToolCall) -> ToolOutcome:
        """Every refusal and failure is an error result for the model, as in pattern B; none raises."""
        outcome = await self.executor.run(
            call, idempotency_key=f"{self.key_prefix}:{call.id}", on_failure="report", agent=self.agent
        )
        self.progress.record_tool(call.name, outcome.is_error)
        return outcome


def screened(content: str, policy: GuardrailPolicy) -> tuple[str, str | None]:
    """A tool output as the model is shown it, and the rule it broke: `screen_tool_output`, each flag counted."""
    shown, flagged = screen_tool_output(content, policy)
    if flagged is not None:
        record_guardrail_rejection(activity_meter(), reason=f"tool_output:{flagged}")
    return shown, flagged
