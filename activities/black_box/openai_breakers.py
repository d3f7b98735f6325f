"""The guardrails inside an Agents SDK black box, on the SDK's own hooks: every loop's rules, the same counts.

- replies without progress (tools/next_step.py `after_reply`), and the same call repeated: `RunHooks.on_llm_end`,
  before the reply's calls run;
- tool errors in a row, and tool-output screening: a tool output guardrail after each call (`reject_content`
  replaces the output with the marked or withheld text the model is shown); a trip there stops the run in
  `RunHooks.on_llm_start`, before the model is asked again.

A tripped breaker raises `BreakerTripped` from a hook, which ends `Runner.run`; the engine turns it into a stopped
result naming the rule. The counts belong to one attempt, as in the Claude engine: a retried attempt resumed from
its checkpoint starts them afresh.
"""

from __future__ import annotations

from typing import Any

from agents import ModelResponse, ToolGuardrailFunctionOutput, ToolOutputGuardrail, ToolOutputGuardrailData

from activities.black_box.engine import screened
from activities.providers.openai_provider import reply_content
from models.guardrails import GuardrailPolicy
from telemetry.metrics import activity_meter, record_guardrail_rejection
from tools.guardrails import CircuitBreakers
from tools.handoffs import target_of
from tools.next_step import Stop, after_reply, fan_in
from tools.registry import AgentProfile, Registry


class BreakerTripped(Exception):
    """A circuit breaker tripped outside a tool guardrail (after a reply); `stop` names the rule."""

    def __init__(self, rule: str) -> None:
        super().__init__(rule)
        self.stop = Stop(rule)


class AgentsSdkBreakers:
    """One attempt's breakers: a check of each reply (`after_reply`), a tool output guardrail, and a check before
    each further inference (`before_inference`)."""

    def __init__(self, policy: GuardrailPolicy, registry: Registry, profiles: dict[str, AgentProfile]) -> None:
        self.breakers = CircuitBreakers(policy)
        self._registry = registry
        self._profiles = profiles
        """The agents this black box can run as, by name: whose checks judge a reply's calls."""
        self.tripped: str | None = None
        """A rule tool results broke in the round now running: the run stops once the round is over."""
        self._errors: dict[str, bool] = {}
        """Whether each call's outcome (by call id) was an error: the output guardrail sees only the text."""
        self.capped: dict[str, str] = {}
        """Calls beyond the agent's `max_tool_calls_per_turn` (by call id), with the error result each gets unrun."""
        self.output_guardrail: ToolOutputGuardrail[Any] = ToolOutputGuardrail(self._after_call, name="guardrails")

    def ran(self, call_id: str, is_error: bool) -> None:
        """Record a call's outcome, for the errors-in-a-row breaker (called by the function tool)."""
        self._errors[call_id] = is_error

    def after_reply(self, agent: str, response: ModelResponse) -> None:
        """Judge `agent`'s reply as every loop does (tools/next_step.py), then each call it asks for against the
        repeat breaker: `BreakerTripped` before any of its calls run.

        Where the SDK forces a difference: it runs one reply's calls side by side, so the whole round is judged
        before it starts (the Claude engine runs a round in order and stops at the call that trips).
        """
        text, calls = reply_content(response.output)
        profile = self._profiles[agent]
        step = after_reply(self.breakers, self._registry, profile, text, calls)
        if isinstance(step, Stop):
            raise BreakerTripped(step.reason)
        runnable, refused = fan_in(profile, calls)  # the SDK runs them all: the function tool answers these unrun
        if refused:
            record_guardrail_rejection(activity_meter(), reason="too_many_tool_calls")
            self.capped |= {outcome.tool_call_id: outcome.content for outcome in refused}
        for call in runnable:
            if target_of(call.name) is None and (rule := self.breakers.call(call)):
                raise BreakerTripped(rule)

    def refused(self) -> None:
        """A call the SDK could not run (no such tool): a tool error, as it is in the Claude engine."""
        self.tripped = self.tripped or self.breakers.outcome(True)

    def before_inference(self) -> None:
        """Raise `BreakerTripped` when the last round of tool results broke a rule: no model call after it."""
        if self.tripped is not None:
            raise BreakerTripped(self.tripped)

    def _after_call(self, data: ToolOutputGuardrailData) -> ToolGuardrailFunctionOutput:
        if self.capped.pop(data.context.tool_call_id, None) is not None:
            return ToolGuardrailFunctionOutput.allow()  # not run: neither a tool result nor an error to count
        # Not raise_exception: that would cancel the round's other calls wherever they are; they finish first.
        content, flagged = screened(str(data.output), self.breakers.policy)
        rule = self.breakers.outcome(self._errors.pop(data.context.tool_call_id, False))
        self.tripped = self.tripped or rule
        if flagged is not None:
            return ToolGuardrailFunctionOutput.reject_content(content, output_info=flagged)
        return ToolGuardrailFunctionOutput.allow()
