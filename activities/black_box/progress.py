"""What a black-box agent run reports while it goes: turns and spending, sent as heartbeat details."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from temporalio import activity

from activities.pricing import cost_usd
from activities.progress_publisher import publish_event
from models.blackbox import InvokeAgentResult
from models.run import Usage
from telemetry.metrics import activity_meter, record_llm_tokens


@dataclass
class AgentProgress:
    """Turns and spending of one agent run so far; sent as heartbeat details, so the UI shows it."""

    agent: str
    model: str
    turns: int = 0
    usage: Usage = field(default_factory=Usage)
    last: str = "started"

    def record_llm(self, input_tokens: int, output_tokens: int, what: str) -> None:
        """Count one inference (one turn) and heartbeat at once."""
        cost = cost_usd(self.model, input_tokens, output_tokens)
        record_llm_tokens(
            activity_meter(), model=self.model, agent=self.agent, input_tokens=input_tokens, output_tokens=output_tokens
        )
        self.usage = self.usage.add(
            Usage(llm_calls=1, input_tokens=input_tokens, output_tokens=output_tokens, cost_usd=cost)
        )
        self.turns += 1
        self.last = what
        self.heartbeat()
        publish_event("agent_turn", agent=self.agent, turn=self.turns, last=what, usage=self.usage.model_dump())

    def record_tool(self, name: str, is_error: bool) -> None:
        """Count one tool call."""
        self.usage = self.usage.add(Usage(tool_calls=1))
        self.last = f"tool {name} {'failed' if is_error else 'ok'}"

    def snapshot(self) -> dict[str, Any]:
        """Heartbeat details: small and free of prompts and outputs."""
        return {"agent": self.agent, "turn": self.turns, "last": self.last, "usage": self.usage.model_dump()}

    def heartbeat(self) -> None:
        """Report progress to Temporal (only inside an activity)."""
        if activity.in_activity():
            activity.heartbeat(self.snapshot())

    def result(self, output: Any, stopped: str | None = None) -> InvokeAgentResult:
        """The activity's result."""
        return InvokeAgentResult(
            agent=self.agent, model=self.model, output=output, usage=self.usage, turns=self.turns, stopped=stopped
        )
