"""The product's own metrics, recorded through Temporal's metric meters and served on the SDK's Prometheus endpoint.

Workflow code records through `workflow.metric_meter()`, which drops whatever a replay records, so a
run that is replayed after a worker restart is not counted twice. Activity code (tools inside black
boxes) records through `activity.metric_meter()`.
"""

from __future__ import annotations

from collections.abc import Mapping

from temporalio import activity
from temporalio.common import MetricMeter

RUNS = "agent_runs"
RUN_TOKENS = "agent_run_tokens"
RUN_COST = "agent_run_cost_usd"
RUN_STEPS = "agent_run_steps"
LLM_TOKENS = "agent_llm_tokens"
TOOL_CALLS = "agent_tool_calls"
APPROVALS = "agent_approvals"
APPROVAL_WAIT = "agent_approval_wait_seconds"
GUARDRAIL_REJECTIONS = "agent_guardrail_rejections"
SPEND_LIMIT = "agent_spend_limit"


def activity_meter() -> MetricMeter:
    """The running activity's meter; a no-op outside one (engines and activity code also run in plain tests and benches)."""
    return activity.metric_meter() if activity.in_activity() else MetricMeter.noop


def record_run_end(
    meter: MetricMeter, *, workflow_type: str, agent: str, status: str, tokens: int, cost_usd: float, steps: int
) -> None:
    """A finished run: one count by status, and its tokens, cost and steps as histograms."""
    labels = {"workflow_type": workflow_type, "agent": agent, "status": status}
    meter.create_counter(RUNS, "Agent runs finished, by status").add(1, labels)
    meter.create_histogram(RUN_TOKENS, "Input plus output tokens per run", "tokens").record(tokens, labels)
    meter.create_histogram_float(RUN_COST, "Cost per run in US dollars", "USD").record(cost_usd, labels)
    meter.create_histogram(RUN_STEPS, "Steps (LLM calls plus tool calls) per run").record(steps, labels)


def record_llm_tokens(meter: MetricMeter, *, model: str, agent: str, input_tokens: int, output_tokens: int) -> None:
    """Tokens of one LLM call or one black-box agent, as a running total by direction."""
    counter = meter.create_counter(LLM_TOKENS, "Tokens sent to and received from models", "tokens")
    counter.add(input_tokens, {"model": model, "agent": agent, "direction": "input"})
    counter.add(output_tokens, {"model": model, "agent": agent, "direction": "output"})


def record_tool_call(meter: MetricMeter, *, tool: str, ok: bool) -> None:
    """One tool call that ran; `outcome` is `ok` or `error` (success rate = ok / all)."""
    meter.create_counter(TOOL_CALLS, "Tool calls that ran, by outcome").add(
        1, {"tool": tool, "outcome": "ok" if ok else "error"}
    )


def record_approval(meter: MetricMeter, *, kind: str, outcome: str, waited_seconds: float) -> None:
    """One decided approval request (`approved`, `rejected` or `timeout`) and how long it waited."""
    labels = {"kind": kind, "outcome": outcome}
    meter.create_counter(APPROVALS, "Approval requests decided, by outcome").add(1, labels)
    meter.create_histogram_float(APPROVAL_WAIT, "Time an approval request waited for a person", "s").record(
        waited_seconds, labels
    )


def record_guardrail_rejection(meter: MetricMeter, *, reason: str) -> None:
    """A step the guardrails refused: a tool call that failed its checks, a budget ceiling, an invalid plan."""
    meter.create_counter(GUARDRAIL_REJECTIONS, "Steps refused by guardrails, by reason").add(1, {"reason": reason})


def record_spend_limit(meter: MetricMeter, *, limit: str, figures: Mapping[str, Mapping[str, float | None]]) -> None:
    """Gauges of one spend limit as its ledger last answered: `figures[kind][unit]`, kind spent/reserved/remaining/cap."""
    gauge = meter.create_gauge_float(SPEND_LIMIT, "Spend limits across runs: spent, reserved, remaining and cap")
    for kind, units in figures.items():
        for unit, value in units.items():
            if value is not None:
                gauge.set(float(value), {"limit": limit, "kind": kind, "unit": unit})
