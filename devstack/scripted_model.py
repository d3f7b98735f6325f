"""An offline stand-in for Claude's judgement, for the demo and load tests: reacts to the conversation.

It is deliberately simple: find arithmetic in the prompt, calculate it, save a note when asked,
then answer. For the hybrid workflow it also plays the planner (plan JSON, revised after a
rejection), the `budget` and `analysis` specialists, and the executor of the approved plan.
Tests that need exact control use scripts instead.
"""

from __future__ import annotations

import json
import re
from typing import Any

from activities.summarise import SUMMARY_INSTRUCTIONS
from devstack.fake_anthropic import Reply

_EXPRESSION = re.compile(r"\(?\d[\d.,]*(?:\s*[-+*/%]\s*\(?\d[\d.,]*\)?)+")
_WANTS_NOTE = re.compile(r"\b(note|save|write down|remember)\b", re.IGNORECASE)


def _text_of(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    return " ".join(b.get("text", "") for b in content or () if b.get("type") == "text")


def _tool_uses(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [b for m in messages if m["role"] == "assistant" for b in m["content"] if b.get("type") == "tool_use"]


def _results(messages: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {
        b["tool_use_id"]: b
        for m in messages
        if m["role"] == "user" and isinstance(m["content"], list)
        for b in m["content"]
        if b.get("type") == "tool_result"
    }


def respond(body: dict[str, Any]) -> Reply:
    """The next turn for a Messages API request body."""
    messages = body["messages"]
    prompt = _text_of(messages[0])
    tools = {t.get("name") for t in body.get("tools") or []}
    if _system_of(body) == SUMMARY_INSTRUCTIONS:  # a long run's context passed CONTEXT_SUMMARY_TOKENS
        return Reply(text="(scripted offline model) The earlier steps used tools and recorded their results.")
    if PLANNER_MARK in _system_of(body):
        return plan_reply(messages)
    if "calculate_budget" in tools:
        return budget_reply(messages)
    if "project_savings" in tools:
        return analysis_reply(messages)
    if prompt.startswith(EXECUTION_MARK):
        return execution_reply(messages)
    uses, results = _tool_uses(messages), _results(messages)
    calc = next((u for u in uses if u["name"] == "calculator"), None)
    note = next((u for u in uses if u["name"] == "write_note"), None)
    if calc is None:
        match = _EXPRESSION.search(prompt)
        if match is None:
            return Reply(
                text="(scripted offline model) I can calculate and save notes. Try: "
                "'What is 6000 * 0.2? Then save a note with the answer.'"
            )
        expression = match.group(0).replace(",", "")
        return Reply(text=f"Let me calculate {expression}.", tool_calls=[("calculator", {"expression": expression})])
    calc_result = results.get(calc["id"], {}).get("content", "?")
    answer = f"{calc['input']['expression']} = {calc_result}"
    if note is None and _WANTS_NOTE.search(prompt):
        return Reply(
            text="I'll save that as a note.", tool_calls=[("write_note", {"title": "Calculation", "body": answer})]
        )
    if note is not None:
        outcome = results.get(note["id"], {})
        if outcome.get("is_error"):
            return Reply(text=f"{answer}. I did not save a note: {outcome.get('content')}")
        return Reply(text=f"{answer}. {outcome.get('content', 'Saved.')}")
    return Reply(text=f"{answer}.")


# --- the hybrid workflow's roles -------------------------------------------------------------

PLANNER_MARK = "You plan how to answer the user's request"
"""Opening of the `planner` agent's instructions (tools/catalog.py)."""
EXECUTION_MARK = "Carry out the approved plan."
"""Opening of the executor's first message (workflows/planning.py)."""
FEEDBACK_MARK = "rejected this plan:"
_NUMBER = re.compile(r"\d+(?:[.,]\d+)*")


def _numbers(text: str) -> list[float]:
    return [float(n.replace(",", "")) for n in _NUMBER.findall(text)]


def _system_of(body: dict[str, Any]) -> str:
    system = body.get("system") or ""
    return system if isinstance(system, str) else " ".join(b.get("text", "") for b in system)


def _fmt(value: float) -> str:
    return f"{value:g}" if value != int(value) else str(int(value))


def plan_reply(messages: list[dict[str, Any]]) -> Reply:
    """The plan JSON: consult budget and analysis, then check and record; a rejection's number becomes the new amount."""
    numbers = _numbers(_text_of(messages[0]))
    income = numbers[0] if numbers else 6000.0
    invest = numbers[1] if len(numbers) > 1 else round(income * 0.1)
    feedback = [_text_of(m) for m in messages[1:] if m["role"] == "user" and FEEDBACK_MARK in _text_of(m)]
    revised = ""
    if feedback:
        reason = feedback[-1].split(FEEDBACK_MARK, 1)[1].split("\n", 1)[0].strip()
        if suggested := _numbers(reason):
            invest = suggested[0]
        revised = f" Revised after review ({reason})."
    plan = {
        "summary": f"Split {_fmt(income)} a month 50/30/20 and check whether investing {_fmt(invest)} a month fits the savings share.{revised}",
        "consultations": [
            {"agent": "budget", "prompt": f"My net monthly income is {_fmt(income)}. Propose a monthly budget."},
            {
                "agent": "analysis",
                "prompt": f"Project investing {_fmt(invest)} a month for 10 years at an annual rate of 0.05.",
            },
        ],
        "execution": (
            f"Compute {_fmt(income)} * 0.2 - {_fmt(invest)} with the calculator (what stays in savings after investing), "
            "save a note with the recommendation, then answer the user briefly."
        ),
    }
    return Reply(text=json.dumps(plan))


def budget_reply(messages: list[dict[str, Any]]) -> Reply:
    """The `budget` specialist: calculate_budget, then BudgetPlan JSON."""
    uses, results = _tool_uses(messages), _results(messages)
    if not uses:
        numbers = _numbers(_text_of(messages[0]))
        return Reply(tool_calls=[("calculate_budget", {"monthly_income": numbers[0] if numbers else 6000.0})])
    split = json.loads(results[uses[-1]["id"]]["content"])
    advice = f"Keep needs under {_fmt(split['needs'])} and automate the {_fmt(split['savings'])} of savings."
    return Reply(text=json.dumps({**split, "advice": advice}))


def analysis_reply(messages: list[dict[str, Any]]) -> Reply:
    """The `analysis` specialist: project_savings, then SavingsProjection JSON."""
    uses, results = _tool_uses(messages), _results(messages)
    if not uses:
        numbers = _numbers(_text_of(messages[0])) + [10, 0.05]
        args = {
            "monthly_amount": numbers[0] if numbers[0] > 0 else 500.0,
            "years": int(numbers[1]) or 10,
            "annual_rate": min(numbers[2], 1.0),
        }
        return Reply(tool_calls=[("project_savings", args)])
    projection = json.loads(results[uses[-1]["id"]]["content"])
    summary = f"{_fmt(projection['monthly_amount'])} a month grows to about {projection['projected_value']:.0f} in {projection['years']} years."
    return Reply(text=json.dumps({**projection, "summary": summary}))


def execution_reply(messages: list[dict[str, Any]]) -> Reply:
    """The executor: calculate what stays in savings, save the recommendation (approval-gated), answer."""
    prompt = _text_of(messages[0])
    uses, results = _tool_uses(messages), _results(messages)
    calc = next((u for u in uses if u["name"] == "calculator"), None)
    note = next((u for u in uses if u["name"] == "write_note"), None)
    if calc is None:
        task = prompt.split("Task:", 1)[-1]
        match = _EXPRESSION.search(task)
        expression = match.group(0).strip() if match else "6000 * 0.2 - 500"
        return Reply(
            text=f"First, what stays in savings: {expression}.", tool_calls=[("calculator", {"expression": expression})]
        )
    left = results.get(calc["id"], {}).get("content", "?")
    recommendation = _recommendation(prompt, calc["input"]["expression"], left)
    if note is None:
        return Reply(
            text="I'll save the recommendation as a note.",
            tool_calls=[("write_note", {"title": "Budget and investment plan", "body": recommendation})],
        )
    outcome = results.get(note["id"], {})
    saved = (
        f"I did not save a note: {outcome.get('content')}"
        if outcome.get("is_error")
        else outcome.get("content", "Saved.")
    )
    return Reply(text=f"{recommendation} {saved}")


def _recommendation(prompt: str, expression: str, left: str) -> str:
    try:
        findings = json.loads(prompt.split("Specialist findings (JSON):", 1)[1])
    except (IndexError, json.JSONDecodeError):
        findings = {}
    budget, analysis = findings.get("budget", {}), findings.get("analysis", {})
    try:
        fits = float(left) >= 0
    except ValueError:
        fits = True
    parts = []
    if budget:
        parts.append(
            f"Budget: needs {_fmt(budget['needs'])}, wants {_fmt(budget['wants'])}, savings {_fmt(budget['savings'])} a month."
        )
    verdict = "Invest" if fits else "Do not invest"
    parts.append(f"{verdict}: {expression} = {left} stays in savings each month.")
    if analysis:
        parts.append(
            f"Invested for {analysis['years']} years at {analysis['annual_rate']:.0%}, it grows to about {analysis['projected_value']:.0f}."
        )
    return " ".join(parts)
