"""The guardrails inside an Agents SDK black box, on the SDK's own hooks: the Claude engine's rules, the same counts.

- the same call repeated: a tool input guardrail, before each call runs;
- tool errors in a row, and tool-output screening: a tool output guardrail, after each call (`reject_content`
  replaces the output with the marked or withheld text the model is shown);
- replies without progress: `RunHooks.on_llm_end`, before the reply's calls run.

A tripped breaker raises (`raise_exception`, or `BreakerTripped` from the hook), which ends `Runner.run`; the
engine turns it into a stopped result naming the rule (`tripped_rule`). The counts belong to one attempt, as in
the Claude engine: a retried attempt resumed from its checkpoint starts them afresh.
"""

from __future__ import annotations

import json
from typing import Any

from agents import (
    ModelResponse,
    ToolGuardrailFunctionOutput,
    ToolInputGuardrail,
    ToolInputGuardrailData,
    ToolInputGuardrailTripwireTriggered,
    ToolOutputGuardrail,
    ToolOutputGuardrailData,
    ToolOutputGuardrailTripwireTriggered,
)

from models.guardrails import GuardrailPolicy
from telemetry.metrics import activity_meter, record_guardrail_rejection
from tools.guardrails import CircuitBreakers, screen_tool_output


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


def screened(content: str, policy: GuardrailPolicy) -> tuple[str, str | None]:
    """`screen_tool_output`, each flagged output counted in `agent_guardrail_rejections_total`."""
    shown, flagged = screen_tool_output(content, policy)
    if flagged is not None:
        record_guardrail_rejection(activity_meter(), reason=f"tool_output:{flagged}")
    return shown, flagged


class AgentsSdkBreakers:
    """One attempt's breakers, as the SDK's tool guardrails and a reply check."""

    def __init__(self, policy: GuardrailPolicy) -> None:
        self.breakers = CircuitBreakers(policy)
        self._errors: dict[str, bool] = {}
        """Whether each call's outcome (by call id) was an error: the output guardrail sees only the text."""
        self.input_guardrail: ToolInputGuardrail[Any] = ToolInputGuardrail(self._before_call, name="circuit_breakers")
        self.output_guardrail: ToolOutputGuardrail[Any] = ToolOutputGuardrail(self._after_call, name="tool_outputs")

    def ran(self, call_id: str, is_error: bool) -> None:
        """Record a call's outcome, for the errors-in-a-row breaker (called by the function tool)."""
        self._errors[call_id] = is_error

    def after_reply(self, response: ModelResponse) -> None:
        """The no-progress breaker after a reply; raises `BreakerTripped`. Refused calls are tool errors here."""
        text = "".join(
            getattr(part, "text", "") or ""
            for item in response.output
            if getattr(item, "type", "") == "message"
            for part in getattr(item, "content", [])
        )
        calls = [
            (item.name, call_arguments(item.arguments))
            for item in response.output
            if getattr(item, "type", "") == "function_call"
        ]
        if rule := self.breakers.reply(text=text, calls=calls, refused=0):
            raise BreakerTripped(rule)

    def _before_call(self, data: ToolInputGuardrailData) -> ToolGuardrailFunctionOutput:
        context = data.context
        rule = self.breakers.call(context.tool_name, call_arguments(context.tool_arguments))
        return ToolGuardrailFunctionOutput.raise_exception(rule) if rule else ToolGuardrailFunctionOutput.allow()

    def _after_call(self, data: ToolOutputGuardrailData) -> ToolGuardrailFunctionOutput:
        content, flagged = screened(str(data.output), self.breakers.policy)
        if rule := self.breakers.outcome(self._errors.pop(data.context.tool_call_id, False)):
            return ToolGuardrailFunctionOutput.raise_exception(rule)
        if flagged is not None:
            return ToolGuardrailFunctionOutput.reject_content(content, output_info=flagged)
        return ToolGuardrailFunctionOutput.allow()


def tripped_rule(exc: BaseException) -> str | None:
    """The full reason of the breaker `exc` reports, or None when it is no breaker's."""
    if isinstance(exc, BreakerTripped):
        return exc.rule
    if isinstance(exc, ToolInputGuardrailTripwireTriggered | ToolOutputGuardrailTripwireTriggered):
        info = exc.output.output_info
        return info if isinstance(info, str) else None
    return None
