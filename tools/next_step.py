"""What an agent loop does after a model reply, decided once for the pattern-B loop and both black-box engines.

Each loop hands the reply to `after_reply` and dispatches on the step it names (as openai-agents' run loop names
`NextStepFinalOutput`, `NextStepRunAgain`): `Stop` (a circuit breaker tripped), `Nudge` (an empty reply is
answered with a nudge), `FinalText` (judge it with tools/final_answer.py), or `RunCalls`. Pure and deterministic:
the workflow replays it, the engines run it inside their activities.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from models.conversation import ToolCall, ToolOutcome
from models.tooling import refused_tool_call_message
from tools.guardrails import CircuitBreakers
from tools.pinning import TRANSFER_PREFIX
from tools.registry import AgentProfile, Registry, check_call

EMPTY_REPLY_NUDGE = "Your reply was empty. Call a tool, or give your final answer."


@dataclass(frozen=True)
class Stop:
    """A circuit breaker tripped: the run ends `stopped`; `reason` is the rule and why."""

    reason: str

    @property
    def rule(self) -> str:
        """The rule's name alone (`max_idle_replies`), as results and metrics name it."""
        return self.reason.split(":", 1)[0]


@dataclass(frozen=True)
class Nudge:
    """A reply with neither calls nor text: the model is told `message` and asked again."""

    message: str = EMPTY_REPLY_NUDGE


@dataclass(frozen=True)
class FinalText:
    """A reply without calls: the agent's final answer, still to be judged against its output schema."""

    text: str


@dataclass(frozen=True)
class RunCalls:
    """A reply asking for tool calls (and handoffs): run them."""

    calls: list[ToolCall] = field(default_factory=list)


NextStep = Stop | Nudge | FinalText | RunCalls


def refused_calls(registry: Registry, agent: AgentProfile, calls: Sequence[ToolCall]) -> int:
    """How many of a reply's calls the checks refuse: unknown or not allowed, or with invalid or unreadable arguments.

    A handoff the agent may make is not refused; nor a call to a declared tool the registry lacks (`registry` is
    the worker's inside a black box), which cannot run either.
    """
    return sum(
        1
        for c in calls
        if c.name.removeprefix(TRANSFER_PREFIX) not in agent.handoffs
        and (c.name not in registry.tools or check_call(registry, agent, c).tool is None)
    )


def after_reply(
    guard: CircuitBreakers | None, registry: Registry, agent: AgentProfile, text: str, calls: list[ToolCall]
) -> NextStep:
    """The step after `agent` replied `text` and asked for `calls`; the breakers count the reply first.

    Without breakers (`guard` None: loops recorded before them) nothing stops the loop and an empty reply is an
    answer.
    """
    if guard is not None and (
        rule := guard.reply(text=text, calls=calls, refused=refused_calls(registry, agent, calls))
    ):
        return Stop(rule)
    if calls:
        return RunCalls(calls)
    if guard is not None and not text.strip():
        return Nudge()
    return FinalText(text)


def fan_in(agent: AgentProfile, calls: list[ToolCall]) -> tuple[list[ToolCall], list[ToolOutcome]]:
    """The calls of one reply that run (the first `max_tool_calls_per_turn`), and error results for the rest."""
    limit = agent.max_tool_calls_per_turn
    if len(calls) <= limit:
        return calls, []
    message = refused_tool_call_message(len(calls), limit)
    return calls[:limit], [
        ToolOutcome(tool_call_id=c.id, name=c.name, content=message, is_error=True) for c in calls[limit:]
    ]
