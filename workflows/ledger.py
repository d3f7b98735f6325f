"""The run's one budget and its record of work: pure functions over typed state, testable without a server."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from models.budget import Allowance, CallFit, fit_call
from models.conversation import ToolCall, ToolOutcome, describe_call, shortened
from models.llm import LlmResponse
from models.run import Budget, Usage

MAX_DONE_ENTRIES = 50
"""The stop summary keeps the last entries only, so a long run's result stays small."""
MAX_NOT_DONE_ENTRIES = 20
"""The stop summary lists the first entries of what was not done, then `... and N more`."""


def capped(entries: list[str], limit: int = MAX_NOT_DONE_ENTRIES) -> list[str]:
    """The first `limit` entries, and one saying how many more there were."""
    if len(entries) <= limit:
        return list(entries)
    return [*entries[:limit], f"... and {len(entries) - limit} more"]


class RunLedger(BaseModel):
    """Spending and steps of a whole run, shared by every stage so no branch overspends alone."""

    budget: Budget
    started_at: datetime
    usage: Usage = Field(default_factory=Usage)
    steps: int = 0
    done: list[str] = Field(default_factory=list)
    waited_seconds: float = 0.0
    """Time spent waiting for people; it does not count against max_seconds (a human may take days)."""

    def exceeded(self, now: datetime) -> str | None:
        """Which ceiling stops the next step, as a sentence, or None to go on."""
        b, u = self.budget, self.usage
        if self.steps >= b.max_steps:
            return f"step ceiling reached: {self.steps} of max_steps {b.max_steps}"
        if u.total_tokens >= b.max_tokens:
            return f"token budget spent: {u.total_tokens} of max_tokens {b.max_tokens}"
        if u.cost_usd >= b.max_cost_usd:
            return f"cost budget spent: ${u.cost_usd:.4f} of max_cost_usd ${b.max_cost_usd}"
        elapsed = (now - self.started_at).total_seconds() - self.waited_seconds
        if elapsed >= b.max_seconds:
            return f"time budget spent: {elapsed:.0f}s of max_seconds {b.max_seconds} (approval waits excluded)"
        return None

    def output_allowance(self, default: int) -> int:
        """Output tokens the next call may produce without passing max_tokens."""
        return max(1, min(default, self.budget.max_tokens - self.usage.total_tokens))

    def branch_allowance(self, default: int, branches: int) -> int:
        """Output tokens one of `branches` parallel branches may produce: its share of what is left."""
        left = self.budget.max_tokens - self.usage.total_tokens
        return max(1, min(default, left // max(1, branches)))

    def share(self, branches: int) -> Allowance:
        """One of `branches` parallel branches' share of the tokens, cost and steps left (1: all that is left).

        Steps become the branch's turns; it gets at least one, since the ledger counts a whole branch as one step.
        """
        b, u, n = self.budget, self.usage, max(1, branches)
        return Allowance(
            max_tokens=max(0, (b.max_tokens - u.total_tokens) // n),
            max_cost_usd=max(0.0, math.floor((b.max_cost_usd - u.cost_usd) / n * 1e8) / 1e8),
            max_steps=max(1, (b.max_steps - self.steps) // n),
        )

    def fit_next_call(self, input_estimate: int, model: str | None, default_output: int) -> CallFit:
        """The next model call's output allowance once its estimated input is paid, or why it cannot be made."""
        return fit_call(
            tokens_left=self.budget.max_tokens - self.usage.total_tokens,
            cost_left=self.budget.max_cost_usd - self.usage.cost_usd,
            input_estimate=input_estimate,
            model=model,
            default_output=default_output,
        )

    def record_llm(self, response: LlmResponse) -> None:
        """Count one inference (and replies its failed earlier attempts paid for) and note what the model decided."""
        self.usage = self.usage.add(response.usage)
        if response.earlier_attempts is not None:
            self.usage = self.usage.add(response.earlier_attempts)
        self.steps += 1
        if response.tool_calls:
            decided = "asked for " + ", ".join(capped([c.name for c in response.tool_calls], 8))
        else:
            decided = "answered: " + shortened(response.text)
        self._note(f"step {self.steps}: LLM {decided}")

    def record_tool(self, call: ToolCall, outcome: ToolOutcome) -> None:
        """Count one tool call and note its result."""
        self.usage = self.usage.add(Usage(tool_calls=1))
        self.steps += 1
        mark = "error" if outcome.is_error else "ok"
        self._note(f"step {self.steps}: {describe_call(call)} -> {mark}: {shortened(outcome.content)}")

    def record_usage(self, usage: Usage, note: str) -> None:
        """Count spending done elsewhere (a black-box agent) as one step."""
        self.usage = self.usage.add(usage)
        self.steps += 1
        self._note(f"step {self.steps}: {note}")

    def note(self, entry: str) -> None:
        """Record something that happened without spending (a handoff), in the run's record of work."""
        self._note(entry)

    def _note(self, entry: str) -> None:
        self.done.append(entry)
        del self.done[:-MAX_DONE_ENTRIES]

    def stop_summary(self, reason: str, not_done: list[str], last_text: str = "") -> dict[str, Any]:
        """The structured output of a run ended by a ceiling: what was done and what was not."""
        return {
            "summary": f"Stopped before finishing: {reason}. {self.steps} steps done; {len(not_done)} pending.",
            "reason": reason,
            "done": list(self.done),
            "not_done": capped(not_done),
            "last_model_text": last_text,
        }
