"""An agent's final answer checked against its `output_schema` (JSON Schema): the pattern-B loop (in the workflow) and both black-box engines use this.

A reply that does not validate goes back to the model once with the problems; a second invalid reply
fails the activity non-retryably (`AgentOutputInvalid`): retrying the whole agent would pay for it again.
"""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema
from temporalio.exceptions import ApplicationError

_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)

CORRECTIONS = 1
"""How many times an invalid final answer is sent back before the run fails."""


def schema_instruction(schema: dict[str, Any]) -> str:
    """What the instructions add so the model knows the shape of its final answer."""
    return f"\n\nYour final answer must be JSON only, matching this schema: {json.dumps(schema, sort_keys=True)}"


def check_output(text: str, schema: dict[str, Any]) -> tuple[Any, str | None]:
    """(the parsed JSON, None) when `text` validates against `schema`, else (None, the problems)."""
    raw = text.strip()
    if match := _FENCE.match(raw):
        raw = match.group(1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        return None, f"not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
    validator = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)(schema)
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    if errors:
        return None, "; ".join(f"{'.'.join(map(str, e.absolute_path)) or 'answer'}: {e.message}" for e in errors)
    return value, None


def correction(problems: str, schema: dict[str, Any]) -> str:
    """The message that sends an invalid answer back to the model."""
    return (
        f"Your answer does not match the required output schema ({problems}). "
        f"Reply with JSON only, matching: {json.dumps(schema, sort_keys=True)}"
    )


def output_invalid(agent: str, problems: str) -> ApplicationError:
    """The non-retryable failure after the correction was not enough."""
    return ApplicationError(
        f"agent {agent!r} answered twice with output that does not match its output_schema: {problems}",
        type="AgentOutputInvalid",
        non_retryable=True,
    )
