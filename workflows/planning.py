"""Pure pieces of the hybrid workflow's planning: read the planner's JSON, check it, brief the executor."""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import ValidationError

from models.hybrid import HybridPlan
from tools.pinning import specialist_names
from tools.registry import Registry

_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.DOTALL)
_OBJECT = re.compile(r"\{.*\}", re.DOTALL)


def specialists(registry: Registry) -> list[str]:
    """Agents the planner may consult: those that answer with structured output."""
    return specialist_names(registry)


def parse_plan(text: str, registry: Registry) -> tuple[HybridPlan | None, str | None]:
    """(plan, None), or (None, a correction telling the model what was wrong and what is expected)."""
    raw = text.strip()
    if match := _FENCE.match(raw):
        raw = match.group(1)
    elif not raw.startswith("{") and (match := _OBJECT.search(raw)):
        raw = match.group(0)  # tolerate a sentence around the object; the schema still decides
    schema = json.dumps(HybridPlan.model_json_schema(), sort_keys=True)
    try:
        plan = HybridPlan.model_validate_json(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'plan'}: {e['msg']}" for e in exc.errors())
        return None, f"That is not a valid plan ({problems}). Reply with the plan as JSON only, matching: {schema}"
    allowed = specialists(registry)
    unknown = [c.agent for c in plan.consultations if c.agent not in allowed]
    if unknown:
        return None, (
            f"That plan consults unknown specialists {unknown}; the specialists are {allowed}. "
            f"Reply with the corrected plan as JSON only."
        )
    return plan, None


def rejection_feedback(approver: str, reason: str) -> str:
    """What the planner is told after a person rejects its plan."""
    return (
        f"A reviewer ({approver}) rejected this plan: {reason}\n"
        "Revise the plan to address this and reply with the revised plan as JSON only."
    )


def execution_prompt(request: str, plan: HybridPlan, outputs: dict[str, Any]) -> str:
    """The executor's first message: its task first, then the context it rests on."""
    findings = json.dumps(outputs, indent=2, sort_keys=True) if outputs else "(no specialists were consulted)"
    return (
        f"Carry out the approved plan.\n\nTask: {plan.execution}\n\n"
        f"The user's request: {request}\n\nPlan summary: {plan.summary}\n\n"
        f"Specialist findings (JSON):\n{findings}"
    )
