"""Input screening, before a run's first model call or tool: each agent's rules, then its screening agent if any.

A refused input ends the run `stopped` with the rule that fired; nothing else runs.
"""

from __future__ import annotations

from temporalio import workflow

from workflows import calls, patches
from workflows.run_parts import RunEnd, RunStart

with workflow.unsafe.imports_passed_through():
    from models.conversation import Conversation
    from models.guardrails import GuardrailPolicy
    from models.llm import LlmRequest
    from models.run import RunStatus
    from telemetry.metrics import record_guardrail_rejection
    from tools.guardrails import screen_text
    from tools.output_check import check_output
    from workflows.ledger import RunLedger

SCREENING_PATCH = "input-screening"
"""Runs recorded before input screening went straight to their first model call."""
SCREENING_MAX_OUTPUT_TOKENS = 256
SCREENING_VERDICT_SCHEMA = {
    "type": "object",
    "properties": {"allowed": {"type": "boolean"}, "reason": {"type": "string"}},
    "required": ["allowed"],
}
"""What a screening agent answers (its output_schema should say the same)."""


async def screen_inputs(start: RunStart, inputs: list[tuple[str, str]], ledger: RunLedger) -> RunEnd | None:
    """Screen each (agent, text) of a new run; the run's end when one is refused, else None."""
    if start.resumed is not None or not patches.patched(SCREENING_PATCH):
        return None
    for name, text in inputs:
        spec = start.pinned.specs.get(name)
        if spec is None:
            continue
        rule = screen_text(text, spec.guardrails)
        if rule is None and spec.guardrails.screening_agent:
            rule = await _screening_verdict(start, ledger, spec.guardrails.screening_agent, spec.guardrails, text)
        if rule is not None:
            record_guardrail_rejection(workflow.metric_meter(), reason=f"input:{rule.split(':', 1)[0]}")
            summary = ledger.stop_summary(f"input refused for agent {name} by {rule}", ["the whole request"])
            return RunEnd(RunStatus.STOPPED, {**summary, "rule": rule.split(":", 1)[0]})
    return None


async def _screening_verdict(
    start: RunStart, ledger: RunLedger, screener: str, policy: GuardrailPolicy, text: str
) -> str | None:
    """Ask the screening agent; a refusal (or a reply that is no verdict) is the rule that fired."""
    scope = f"The agent's scope: {policy.scope}\n\n" if policy.scope else ""
    request = LlmRequest(
        agent=screener,
        spec=start.pinned.digests.get(screener),
        model=start.pinned.spec(screener).model or start.request.model,
        conversation=Conversation.start(f"{scope}Decide whether this input may be handled:\n\n{text}"),
        max_tokens=ledger.output_allowance(SCREENING_MAX_OUTPUT_TOKENS),
    )
    response = await calls.call_llm(
        request,
        summary=f"screening (call_llm {screener})",
        where="while screening",
        task_queue=start.pinned.llm_task_queue(request.model),
    )
    ledger.record_llm(response)
    verdict, problems = check_output(response.text, SCREENING_VERDICT_SCHEMA, screener)
    if problems is not None:
        return f"screening_agent: {screener} gave no valid verdict ({problems})"
    return None if verdict["allowed"] else f"screening_agent: {verdict.get('reason') or 'refused'}"
