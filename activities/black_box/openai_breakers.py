"""The guardrails inside an Agents SDK black box, on the SDK's own hooks: the Claude engine's rules, the same counts.

- replies without progress, and the same call repeated: `RunHooks.on_llm_end`, before the reply's calls run;
- tool errors in a row, and tool-output screening: a tool output guardrail after each call (`reject_content`
  replaces the output with the marked or withheld text the model is shown); a trip there stops the run in
  `RunHooks.on_llm_start`, before the model is asked again.

A tripped breaker raises `BreakerTripped` from a hook, which ends `Runner.run`; the engine turns it into a stopped
result naming the rule. The counts belong to one attempt, as in the Claude engine: a retried attempt resumed from
its checkpoint starts them afresh.
"""

from __future__ import annotations

import json
from typing import Any

from agents import (
    ModelResponse,
    ToolGuardrailFunctionOutput,
    ToolOutputGuardrail,
    ToolOutputGuardrailData,
)
from openai.types.responses import ResponseFunctionToolCall, ResponseOutputMessage

from activities.black_box.engine import screened
from models.guardrails import GuardrailPolicy
from tools.guardrails import CircuitBreakers


class BreakerTripped(Exception):
    """A circuit breaker tripped outside a tool guardrail (after a reply); `rule` is its full reason."""

    def __init__(self, rule: str) -> None:
        super().__init__(rule)
        self.rule = rule


def call_arguments(raw: str) -> dict[str, Any]:
    """A call's arguments as the repeat breaker keys them; text that is not a JSON object is kept as it came."""
    try:
        parsed = json.loads(raw or "{}")
    except json.JSONDecodeError:
        return {"unparsed": raw}
    return parsed if isinstance(parsed, dict) else {"unparsed": raw}


class AgentsSdkBreakers:
    """One attempt's breakers: a check of each reply (`after_reply`), a tool output guardrail, and a check before
    each further inference (`before_inference`)."""

    def __init__(self, policy: GuardrailPolicy) -> None:
        self.breakers = CircuitBreakers(policy)
        self.tripped: str | None = None
        """A rule tool results broke in the round now running: the run stops once the round is over."""
        self._errors: dict[str, bool] = {}
        """Whether each call's outcome (by call id) was an error: the output guardrail sees only the text."""
        self.output_guardrail: ToolOutputGuardrail[Any] = ToolOutputGuardrail(self._after_call, name="guardrails")

    def ran(self, call_id: str, is_error: bool) -> None:
        """Record a call's outcome, for the errors-in-a-row breaker (called by the function tool)."""
        self._errors[call_id] = is_error

    def after_reply(self, response: ModelResponse) -> None:
        """A reply without progress, or one repeating a call too often: `BreakerTripped` before any of its calls run.

        The SDK runs one reply's calls side by side, so the whole round is judged before it starts (the Claude
        engine runs a round in order and stops at the call that trips); invalid calls count as tool errors.
        """
        text = "".join(
            getattr(part, "text", "") or ""
            for item in response.output
            if isinstance(item, ResponseOutputMessage)
            for part in item.content
        )
        calls = [
            (item.name, call_arguments(item.arguments))
            for item in response.output
            if isinstance(item, ResponseFunctionToolCall)
        ]
        if rule := self.breakers.reply(text=text, calls=calls, refused=0):
            raise BreakerTripped(rule)
        for name, arguments in calls:
            if rule := self.breakers.call(name, arguments):
                raise BreakerTripped(rule)

    def refused(self) -> None:
        """A call the SDK could not run (no such tool): a tool error, as it is in the Claude engine."""
        self.tripped = self.tripped or self.breakers.outcome(True)

    def before_inference(self) -> None:
        """Raise `BreakerTripped` when the last round of tool results broke a rule: no model call after it."""
        if self.tripped is not None:
            raise BreakerTripped(self.tripped)

    def _after_call(self, data: ToolOutputGuardrailData) -> ToolGuardrailFunctionOutput:
        # Not raise_exception: that would cancel the round's other calls wherever they are; they finish first.
        content, flagged = screened(str(data.output), self.breakers.policy)
        rule = self.breakers.outcome(self._errors.pop(data.context.tool_call_id, False))
        self.tripped = self.tripped or rule
        if flagged is not None:
            return ToolGuardrailFunctionOutput.reject_content(content, output_info=flagged)
        return ToolGuardrailFunctionOutput.allow()
