"""Guardrails an agent declares: circuit breakers on its loop and screening of what it is given.

Defaults hold for every agent; the agents file may set its own per agent (`[agents.NAME.guardrails]`).
They are part of the pinned spec, so a run keeps the rules it started with.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

INJECTION_PATTERNS: tuple[str, ...] = (
    r"\bignore\s+(all\s+|any\s+)?(the\s+)?(previous|prior|above|earlier)\s+(instructions|prompts?|rules)\b",
    r"\bdisregard\s+(all\s+|any\s+)?(the\s+)?(previous|prior|above|your)\s+(instructions|prompts?|rules)\b",
    r"\byou\s+are\s+now\s+(in\s+)?(developer|dan|jailbreak)\s+mode\b",
    r"\breveal\s+(your|the)\s+(system\s+prompt|instructions)\b",
)
"""Phrases of instruction-override attempts, matched case-insensitively (input and tool outputs)."""


class GuardrailPolicy(BaseModel):
    """One agent's guardrails; every count of 0 turns that breaker off."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_repeated_calls: int = Field(3, ge=0, le=1000)
    """The same tool call (name and arguments) this many times in a run: stop."""
    max_consecutive_tool_errors: int = Field(5, ge=0, le=1000)
    """This many tool results in a row that are errors: stop."""
    max_idle_replies: int = Field(3, ge=0, le=1000)
    """This many model replies in a row that make no progress (no tool call and no answer, or only calls
    refused for invalid arguments or unknown tools): stop."""
    scope: str | None = Field(None, max_length=2000)
    """What the agent is for, one statement: given to a screening agent, and named when input is refused."""
    blocked_input: list[str] = Field(default_factory=list, max_length=100)
    """Regular expressions (case-insensitive) the input must not match, beside the built-in injection patterns."""
    block_injections: bool = True
    """Refuse input matching INJECTION_PATTERNS."""
    tool_outputs: Literal["off", "mark", "withhold"] = "mark"
    """Tool outputs matching the patterns: passed on (`off`), passed on with a warning (`mark`), or replaced by
    a notice (`withhold`)."""
    screening_agent: str | None = None
    """An agent (with an output schema of `{"allowed": bool, "reason": str}`) asked before the first model call."""

    @field_validator("blocked_input")
    @classmethod
    def _patterns_compile(cls, patterns: list[str]) -> list[str]:
        for i, pattern in enumerate(patterns):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"blocked_input[{i}] is not a regular expression: {exc}") from None
        return patterns


class BreakerState(BaseModel):
    """What the breakers have counted so far; carried across continue-as-new with the loop."""

    calls_seen: dict[str, int] = Field(default_factory=dict)
    """Times each tool call (by `name` + canonical arguments) was made."""
    consecutive_tool_errors: int = 0
    idle_replies: int = 0
