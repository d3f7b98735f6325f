"""An agent's final answer against its `output_schema`: the parsed JSON, or a correction the model can act on.

Pure (json and jsonschema only), so the pattern-B loop checks answers inside the workflow and the
black-box engines inside their activities, with the same messages.
"""

from __future__ import annotations

import json
import re
from typing import Any

import jsonschema

_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)


def check_output(text: str, schema: dict[str, Any]) -> tuple[Any, str | None]:
    """(the answer as JSON, None) when it validates, else (None, what to tell the model)."""
    raw = text.strip()
    if match := _FENCE.match(raw):
        raw = match.group(1)
    shape = json.dumps(schema, sort_keys=True)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        return (
            None,
            f"Your answer is not JSON ({exc.msg} at character {exc.pos}). Reply with JSON only, matching: {shape}",
        )
    validator = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)(schema)
    errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    if not errors:
        return value, None
    problems = "; ".join(f"{'.'.join(map(str, e.absolute_path)) or 'answer'}: {e.message}" for e in errors[:10])
    return None, f"Your answer does not match the output schema ({problems}). Reply with JSON only, matching: {shape}"
