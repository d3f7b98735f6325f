"""What a black-box agent run reports while it goes: turns and spending, sent as heartbeat details.

Spending is cumulative over the activity's attempts: an attempt starts from the spend its predecessor
last heartbeated (`activities.heartbeat.carried_spend`), so a retried or finally failed activity still reports all it paid for.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.progress_publisher import publish_event
from models.blackbox import BlackBoxHandoff, InvokeAgentResult
from models.budget import Allowance, CallFit, fit_within
from models.pricing import cost_usd
from models.run import Usage
from telemetry.metrics import activity_meter, record_llm_tokens
from tools.next_step import Stop


@dataclass
class AgentLedger:
    """Turns and spending of one agent run so far; sent as heartbeat details, so the UI shows it."""

    agent: str
    model: str
    turns: int = 0
    usage: Usage = field(default_factory=Usage)
    """Spend of every attempt so far (this one's and what `carried_spend` brought in)."""
    last: str = "started"
    allowance: Allowance | None = None
    """The branch's share of the run's budget (None: runs recorded before allowances)."""
    resume: dict[str, Any] | None = None
    """Where a retried attempt starts (activities/black_box/checkpoint.py): sent with every heartbeat."""
    active: str = ""
    """The agent that has the conversation after handoffs ("": `agent` itself)."""
    handoffs: list[BlackBoxHandoff] = field(default_factory=list)
    """The handoffs so far, in order (activities/black_box/handoffs.py)."""

    @property
    def speaker(self) -> str:
        """The agent whose turns these are now."""
        return self.active or self.agent

    async def fit_turn(self, estimate: Callable[[], Awaitable[int]], default_output: int) -> CallFit:
        """The next call's output allowance within what the branch has left once its input (`estimate`: the engine's
        `input_estimate`, asked only when there is an allowance) is paid, or why the call is not made."""
        if self.allowance is None:  # runs recorded before allowances: every call their turns allow, unestimated
            return CallFit(output_tokens=default_output)
        return self.fit_next_call(await estimate(), default_output)

    def fit_next_call(self, input_estimate: int, default_output: int) -> CallFit:
        """The next call's output allowance within what the branch has left, or why it is not made."""
        if self.allowance is None:
            return CallFit(output_tokens=default_output)
        if self.turns >= self.allowance.max_steps:
            return CallFit(refused=f"step allowance spent: {self.turns} of the {self.allowance.max_steps} turns given")
        return fit_within(
            self.allowance, self.usage, input_estimate=input_estimate, model=self.model, default_output=default_output
        )

    def record_llm(self, input_tokens: int, output_tokens: int, what: str) -> None:
        """Count one inference (one turn) and heartbeat at once."""
        cost = cost_usd(self.model, input_tokens, output_tokens)
        record_llm_tokens(
            activity_meter(),
            model=self.model,
            agent=self.speaker,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
        )
        self.usage = self.usage.add(
            Usage(llm_calls=1, input_tokens=input_tokens, output_tokens=output_tokens, cost_usd=cost)
        )
        self.turns += 1
        self.last = what
        self.heartbeat()
        publish_event("agent_turn", agent=self.speaker, turn=self.turns, last=what, usage=self.usage.model_dump())

    def record_tool(self, name: str, is_error: bool) -> None:
        """Count one tool call."""
        self.usage = self.usage.add(Usage(tool_calls=1))
        self.last = f"tool {name} {'failed' if is_error else 'ok'}"

    def snapshot(self) -> dict[str, Any]:
        """Heartbeat details: small and free of prompts and outputs."""
        snapshot = {"agent": self.speaker, "turn": self.turns, "last": self.last, "usage": self.usage.model_dump()}
        if self.resume is not None:
            snapshot["resume"] = self.resume
        return snapshot

    def heartbeat(self) -> None:
        """Report progress to Temporal (only inside an activity)."""
        if activity.in_activity():
            activity.heartbeat(self.snapshot())

    def failure(self, exc: BaseException) -> ApplicationError:
        """`exc` as the attempt's failure, its details ending with the spend so far (the workflow counts it)."""
        self.last = f"failed: {type(exc).__name__}"
        self.heartbeat()  # the next attempt starts from this
        if isinstance(exc, ApplicationError):
            return ApplicationError(
                exc.message,
                *exc.details,
                self.snapshot(),
                type=exc.type,
                non_retryable=exc.non_retryable,
                next_retry_delay=exc.next_retry_delay,
            )
        return ApplicationError(str(exc) or type(exc).__name__, self.snapshot(), type=type(exc).__name__)

    def tripped(self, stop: Stop) -> InvokeAgentResult:
        """The result of an agent a circuit breaker stopped (tools/next_step.py): the run ends `stopped`."""
        return self.result(None, stopped=stop.reason, rule=stop.rule)

    def out_of_turns(self, max_turns: int) -> InvokeAgentResult:
        """The result of an agent that used its turns without answering."""
        return self.result(None, stopped=f"turn ceiling reached: {self.turns} of max_turns {max_turns}")

    def result(self, output: Any, stopped: str | None = None, rule: str | None = None) -> InvokeAgentResult:
        """The activity's result (`rule`: the guardrail that stopped the agent, if one did)."""
        return InvokeAgentResult(
            agent=self.agent,
            model=self.model,
            output=output,
            usage=self.usage,
            turns=self.turns,
            stopped=stopped,
            rule=rule,
            answered_by=self.active or None,
            handoffs=list(self.handoffs),
        )
