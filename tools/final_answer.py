"""An agent's final answer, judged once for every loop: the pattern-B loop (in the workflow) and both black-box engines.

The agent's instructions carry its `output_schema` (`instructions_for`). An answer that does not validate goes back
to the model with the problems, `CORRECTIONS` times; the next invalid one fails the run with `rejection`'s message
(`OutputInvalid` in a loop, `AgentOutputInvalid` inside a black box: the error types differ, the rule does not).
Pure (no I/O, deterministic), so the workflow replays it; `check_output` (tools/output_check.py) does the checking.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tools.output_check import check_output

CORRECTIONS = 1
"""How many times an invalid final answer is sent back before the run fails."""


@dataclass(frozen=True)
class Accepted:
    """The answer stands: the text itself, or the parsed JSON when the agent has an output schema."""

    output: Any


@dataclass(frozen=True)
class SendBack:
    """The answer does not match the schema: the model reads `message` and answers again."""

    problems: str
    message: str


@dataclass(frozen=True)
class Rejected:
    """Invalid again after the corrections: the run fails with `message`."""

    problems: str
    message: str


Verdict = Accepted | SendBack | Rejected


def judge_answer(text: str, schema: dict[str, Any] | None, agent: str, corrections: int) -> Verdict:
    """The verdict on a final answer of `agent`, which has been sent back `corrections` times already.

    `OutputSchemaUnusable` (a run failure) when the schema itself cannot check the answer (`check_output`).
    """
    if schema is None:
        return Accepted(text)
    value, problems = check_output(text, schema, agent)
    if problems is None:
        return Accepted(value)
    if corrections >= CORRECTIONS:
        return Rejected(problems, rejection(agent, problems))
    return SendBack(problems, correction(problems, schema))


def instructions_for(instructions: str, schema: dict[str, Any] | None) -> str:
    """An agent's system prompt: its instructions and, with an output schema, the shape its final answer must have."""
    return instructions + (schema_instruction(schema) if schema is not None else "")


def schema_instruction(schema: dict[str, Any]) -> str:
    """What the instructions add so the model knows the shape of its final answer."""
    return f"\n\nYour final answer must be JSON only, matching this schema: {json.dumps(schema, sort_keys=True)}"


def correction(problems: str, schema: dict[str, Any]) -> str:
    """The message that sends an invalid answer back to the model."""
    return (
        f"Your answer does not match the required output schema ({problems}). "
        f"Reply with JSON only, matching: {json.dumps(schema, sort_keys=True)}"
    )


def rejection(agent: str, problems: str) -> str:
    """Why the run fails after the corrections were not enough."""
    return f"agent {agent!r} answered twice with output that does not match its output_schema: {problems}"
