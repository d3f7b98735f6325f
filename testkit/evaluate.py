"""Regression evals: re-run recorded runs' prompts against a changed agents file and say what got worse.

Each case is a cassette (an archived run, or a cassette file). Its prompt is run again on the kit's worker;
read tools run, write tools never do (their recorded outputs are served, testkit/tap.py). Per case the
verdict compares with the recording: status, output (equal; else valid against the agent's output schema;
else judged by an optional judge agent), the tool sequence, and cost. Any difference that is not a pass of
those rules is a regression.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import Any

from testkit.cassette import Cassette
from testkit.drive import RunReport
from testkit.kit import AgentKit
from tools.output_check import check_output

JUDGE_PROMPT = (
    "Compare two answers to the same request. Reply PASS if the new answer is as correct and useful as the "
    "recorded one, else FAIL and why.\n\nRequest:\n{prompt}\n\nRecorded answer:\n{recorded}\n\nNew answer:\n{new}"
)


@dataclass
class EvalResult:
    """One case's verdict: what differs from the recording, and why it counts (or not) as a regression."""

    case: Cassette
    report: RunReport
    output_check: str = "equal"
    """`equal`, `schema-valid`, `judged pass`, `judged fail`, or `differs`."""
    tool_diff: list[str] = field(default_factory=list)
    """The tool sequence as a diff (`-calculator`: recorded, not called now); empty when the same."""
    reasons: list[str] = field(default_factory=list)

    @property
    def regression(self) -> bool:
        """Whether this case got worse than its recording."""
        return bool(self.reasons)


async def evaluate(kit: AgentKit, cases: list[Cassette], judge: str | None = None) -> list[EvalResult]:
    """Run every case on `kit` (approvals granted: the recorded run's were) and judge it."""
    results = []
    for case in cases:
        report = await kit.run(
            case.prompt, case.agent, model=case.model, recording=case.recorded_calls(), serve="write"
        )
        results.append(await _judge_case(kit, case, report, judge))
    return results


async def _judge_case(kit: AgentKit, case: Cassette, report: RunReport, judge: str | None) -> EvalResult:
    result = EvalResult(case, report)
    if report.status != case.status:
        result.reasons.append(
            f"status {case.status} -> {report.status}" + (f" ({report.failure})" if report.failure else "")
        )
    recorded = [c.tool for c in case.tool_calls]
    if recorded != report.tool_names:
        result.tool_diff = [d for d in difflib.ndiff(recorded, report.tool_names) if d[:1] in "+-"]
        result.reasons.append("tool calls " + " ".join(d.replace(" ", "") for d in result.tool_diff))
    result.reasons += [f"divergence: {d}" for d in report.divergences]
    result.output_check = await _check_output(kit, case, report, judge)
    if result.output_check in ("differs", "judged fail"):
        result.reasons.append(f"output {result.output_check}")
    return result


async def _check_output(kit: AgentKit, case: Cassette, report: RunReport, judge: str | None) -> str:
    if report.output == case.output:
        return "equal"
    agent = kit.registry.agents.get(case.agent)
    if agent is not None and agent.output_schema is not None and report.output is not None:
        text = report.output if isinstance(report.output, str) else json.dumps(report.output)
        _, problem = check_output(text, agent.output_schema, case.agent)
        return "schema-valid" if problem is None else "differs"
    if judge is None:
        return "differs"
    prompt = JUDGE_PROMPT.format(prompt=case.prompt, recorded=_text(case.output), new=_text(report.output))
    verdict = await kit.run(prompt, judge)
    return "judged pass" if _text(verdict.output).strip().upper().startswith("PASS") else "judged fail"


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def summary_table(results: list[EvalResult]) -> str:
    """One line per case: run, status, output check, tool diff, recorded and new cost, verdict."""
    header = ("run", "status", "output", "tools", "cost (was)", "verdict")
    rows = [header]
    for r in results:
        status = r.report.status if r.report.status == r.case.status else f"{r.case.status}->{r.report.status}"
        was = float(r.case.usage.get("cost_usd", 0.0))
        rows.append(
            (
                r.case.workflow_id,
                status,
                r.output_check,
                " ".join(d.replace(" ", "") for d in r.tool_diff) or "same",
                f"${r.report.cost_usd:.4f} (${was:.4f})",
                "REGRESSION" if r.regression else "pass",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    failed = sum(r.regression for r in results)
    lines.append(f"{len(results)} runs, {failed} regression(s)")
    for r in results:
        lines += [f"  {r.case.workflow_id}: {reason}" for reason in r.reasons]
    return "\n".join(lines)
