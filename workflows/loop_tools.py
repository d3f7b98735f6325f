"""The tool steps of the pattern-B loop: each call checked, approved where its tool needs it, run as `run_tool`.

`SteeredLoop` decides what runs and when (breakers, ceilings, handoffs); this module runs what it is given.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from temporalio import workflow

from workflows import activity_options, calls, patches, tool_plan

with workflow.unsafe.imports_passed_through():
    from models.approval import Decision
    from models.conversation import ToolCall, ToolOutcome, describe_call
    from models.history import HistoryLimits
    from models.run import ApprovalPolicy
    from models.tooling import ToolInvocation
    from telemetry.metrics import record_guardrail_rejection
    from tools.guardrails import CircuitBreakers, screen_tool_output
    from tools.next_step import fan_in
    from tools.registry import AgentProfile, Registry, Tool, check_call
    from workflows.ledger import RunLedger

AskApproval = Callable[..., Awaitable[Decision]]
TOOL_FAN_IN_PATCH = "bounded-tool-fan-in"
"""Runs recorded before it ran every tool call of a reply, however many; they replay so."""


class ToolSteps:
    """Runs one loop's tool calls as steps of its ledger, with its approval policy and idempotency keys."""

    def __init__(
        self,
        *,
        registry: Registry,
        ledger: RunLedger,
        approval_policy: ApprovalPolicy,
        ask_approval: AskApproval,
        step_label: str,
        limits: HistoryLimits,
        options: Callable[[Tool], activity_options.ActivityOptions],
    ) -> None:
        self._registry = registry
        self._ledger = ledger
        self._policy = approval_policy
        self._ask_approval = ask_approval
        self._label = step_label
        self._limits = limits
        self._options = options
        """How `run_tool` is called for a tool (`SteeredLoop.tool_options`, which a subclass may change)."""

    def fan_in(self, agent: AgentProfile, requested: list[ToolCall]) -> tuple[list[ToolCall], list[ToolOutcome]]:
        """The tool calls of one reply that run (tools/next_step.py `fan_in`), and error results for the rest."""
        # The patch is asked only of a reply over the limit, where runs recorded before patch sets asked it.
        if len(requested) <= agent.max_tool_calls_per_turn or not patches.patched(TOOL_FAN_IN_PATCH):
            return requested, []
        record_guardrail_rejection(workflow.metric_meter(), reason="too_many_tool_calls")
        return fan_in(agent, requested)

    async def run_batch(self, agent: AgentProfile, batch: list[ToolCall]) -> list[ToolOutcome]:
        """Run `batch` concurrently (at most MAX_CONCURRENT_TOOL_CALLS at once); outcomes in its order."""
        first = self._ledger.steps + 1
        if len(batch) == 1:
            return [await self.run_tool(agent, batch[0], first)]
        gate = asyncio.Semaphore(tool_plan.MAX_CONCURRENT_TOOL_CALLS)

        async def one(index: int, call: ToolCall) -> ToolOutcome:
            async with gate:
                return await self.run_tool(agent, call, first + index)

        return list(await asyncio.gather(*(one(i, call) for i, call in enumerate(batch))))

    async def run_tool(self, agent: AgentProfile, call: ToolCall, step: int) -> ToolOutcome:
        """One call: refused by the checks (an error result), waiting for approval where it needs it, then run."""
        check = check_call(self._registry, agent, call)
        if check.tool is None:
            record_guardrail_rejection(workflow.metric_meter(), reason=check.reason or "refused")
            return ToolOutcome(tool_call_id=call.id, name=call.name, content=check.error or "", is_error=True)
        tool = check.tool
        if tool.requires_approval:
            decision = await self._ask_approval(
                kind="tool_call",
                summary=f"run {describe_call(call)}",
                proposal={"tool": call.name, "arguments": call.arguments},
                policy=self._policy,
            )
            if not decision.approved:
                why = (
                    "approval timed out"
                    if decision.via == "timeout"
                    else f"rejected by {decision.approver}: {decision.comment or 'no reason given'}"
                )
                return ToolOutcome(tool_call_id=call.id, name=call.name, content=f"Not run: {why}", is_error=True)
        return await self._execute(agent, tool, call, step)

    async def _execute(self, agent: AgentProfile, tool: Tool, call: ToolCall, step: int) -> ToolOutcome:
        invocation = ToolInvocation(
            agent=agent.name,
            call=call,
            idempotency_key=f"{workflow.info().workflow_id}:{self._label}step-{step}:{call.id}",
            offload=self._limits.offload,
        )
        try:
            return await calls.run_tool(
                invocation,
                self._options(tool),
                summary=f"{self._label}step {step}: {describe_call(call, 80)}",
            )
        except calls.ToolCallFailed as exc:
            return ToolOutcome(tool_call_id=call.id, name=call.name, content=f"Error: {exc}", is_error=True)


def screened(guard: CircuitBreakers, outcome: ToolOutcome) -> ToolOutcome:
    """A tool output that reads like instructions to the model is marked or withheld, as the agent declares."""
    content, rule = screen_tool_output(outcome.content, guard.policy)
    if rule is None:
        return outcome
    record_guardrail_rejection(workflow.metric_meter(), reason=f"tool_output:{rule}")
    return outcome.model_copy(update={"content": content})
