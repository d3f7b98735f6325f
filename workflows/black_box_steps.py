"""Black-box steps on the run's one ledger: pattern A's steps and the hybrid's specialists (stage 2) alike.

Each step: check the run's ceilings, ask for one whole agent run (`invoke_agent`) within what the
budget leaves, count what it spent, keep its output. A fan-out runs several at once, within a bound;
the first step that cannot run or that stops early stops those not yet started.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from temporalio import workflow
from temporalio.exceptions import is_cancelled_exception

from workflows import calls, patches

with workflow.unsafe.imports_passed_through():
    from models.blackbox import DEFAULT_MAX_TURNS, InvokeAgentRequest, InvokeAgentResult
    from models.budget import BUDGET_ESTIMATES_PATCH
    from models.errors import AgentRunFailed
    from models.llm import DEFAULT_MAX_OUTPUT_TOKENS
    from telemetry.metrics import record_guardrail_rejection
    from workflows.ledger import RunLedger


def step_keys(agents: Sequence[str]) -> list[str]:
    """Output keys: the agent's name, or `agent#n` where an agent appears more than once."""
    names = list(agents)
    return [a if names.count(a) == 1 else f"{a}#{i + 1}" for i, a in enumerate(names)]


@dataclass(frozen=True)
class BlackBoxStep:
    """One agent to run whole, and how the run names it."""

    key: str
    """Its output's key (`step_keys`)."""
    agent: str
    prompt: str
    label: str
    """Its place in the run, part of its tools' idempotency keys (e.g. `step-2`)."""
    summary: str
    """The activity summary the Temporal UI shows."""
    where: str
    """Where it sits, for a failure message (e.g. `step 2`)."""
    noun: str
    """How the run's record of work names it (e.g. `agent budget`, `specialist budget`)."""
    spec: str | None = None
    """The digest of the agent's pinned spec (None in runs recorded before pinning)."""
    model: str | None = None
    """The agent's own model, when its spec names one (else the run's)."""
    max_turns: int = DEFAULT_MAX_TURNS
    llm_task_queue: str | None = None
    """The provider's own task queue (LLM_RATE_LIMITS), or None: the run's."""
    handoff_specs: dict[str, str] = field(default_factory=dict)
    """Digests of the pinned agents this one can hand off to inside its black box (empty: none)."""


BLACK_BOX_HANDOFFS_PATCH = "black-box-handoffs"
"""Black boxes are sent their handoff targets' digests and the run records the handoffs they report."""


class BlackBoxSteps:
    """Runs black-box steps on one ledger, keeping their outputs and the first reason to stop."""

    def __init__(
        self,
        ledger: RunLedger,
        model: str | None,
        keys: Sequence[str],
        *,
        pending_label: Callable[[str], str] = str,
        later: Sequence[str] = (),
        on_start: Callable[[BlackBoxStep], None] | None = None,
        on_handoff: Callable[[str, str], None] | None = None,
    ) -> None:
        self._ledger = ledger
        self._model = model
        self._keys = list(keys)
        self._pending_label = pending_label
        self._later = list(later)
        """What comes after these steps, listed as not done when they stop the run (e.g. approval, execution)."""
        self._on_start = on_start
        self._on_handoff = on_handoff
        self.handoffs: list[dict[str, Any]] = []
        """Every handoff the black boxes reported, with the step it happened in (the archive keeps them)."""
        self.outputs: dict[str, Any] = {}
        self.stopped: dict[str, Any] | None = None
        """The ledger's stop summary of the first step that could not run or stopped early; None while all answer."""

    async def run(self, step: BlackBoxStep, branches: int = 1) -> bool:
        """Run one step; False (and `stopped` set) when a ceiling forbade it or the agent stopped before answering.

        One of `branches` running at once gets its share of the tokens, cost and steps left, so together they
        cannot overspend; a step in sequence gets all that is left. Spend of failed attempts counts.
        """
        if reason := self._ledger.exceeded(workflow.now()):
            return self._stop(reason)
        if self._on_start is not None:
            self._on_start(step)
        request = InvokeAgentRequest(
            agent=step.agent,
            spec=step.spec,
            prompt=step.prompt,
            model=step.model or self._model,
            max_turns=step.max_turns,
            max_output_tokens=self._ledger.branch_allowance(DEFAULT_MAX_OUTPUT_TOKENS, branches),
            label=step.label,
            allowance=self._ledger.share(branches) if patches.patched(BUDGET_ESTIMATES_PATCH) else None,
            handoff_specs=self._handoff_specs(step),
        )
        try:
            result = await calls.invoke_black_box(
                request, summary=step.summary, where=step.where, task_queue=step.llm_task_queue
            )
        except AgentRunFailed as exc:
            if exc.spent is not None:  # what its failed attempts paid for counts
                self._ledger.record_usage(exc.spent, f"{step.noun} failed after spending")
            raise
        self._record_handoffs(step, result)
        ending = f" stopped: {result.stopped}" if result.stopped else " answered"
        if result.answered_by:
            ending += f" as {result.answered_by}"
        self._ledger.record_usage(result.usage, f"{step.noun} ({result.turns} turns){ending}")
        if result.stopped:
            if result.rule:  # a breaker inside the black box (either engine), counted once per run by its rule
                record_guardrail_rejection(workflow.metric_meter(), reason=result.rule)
            stopped = self._stop(f"{step.key}: {result.stopped}")
            if result.rule and self.stopped is not None:  # a guardrail, not a ceiling: the run ends `stopped`
                self.stopped.setdefault("rule", result.rule)
            return stopped
        self.outputs[step.key] = result.output
        return True

    @staticmethod
    def _handoff_specs(step: BlackBoxStep) -> dict[str, str]:
        """What the black box may hand off to; only runs whose agents can hand off carry the patch marker, so
        the others' histories are unchanged."""
        if step.handoff_specs and patches.patched(BLACK_BOX_HANDOFFS_PATCH):
            return step.handoff_specs
        return {}

    def _record_handoffs(self, step: BlackBoxStep, result: InvokeAgentResult) -> None:
        """Each handoff inside the black box, in the run's record of work, its archive and its status query."""
        for h in result.handoffs:
            self._ledger.note(f"{step.key}: handed off from {h.source} to {h.target} ({h.context} context): {h.reason}")
            self.handoffs.append({"step": step.key, **h.model_dump(mode="json")})
            if self._on_handoff is not None:
                self._on_handoff(h.source, h.target)

    async def fan_out(self, steps: Sequence[BlackBoxStep], bound: int) -> bool:
        """Run `steps` at most `bound` at a time; once one stops, those not yet started are skipped."""
        slots = asyncio.Semaphore(bound)

        async def branch(step: BlackBoxStep) -> None:
            async with slots:
                if self.stopped is None:
                    await self.run(step, branches=min(bound, len(steps)))

        branches = [asyncio.ensure_future(branch(s)) for s in steps]  # what gather does, kept to wait on them
        try:
            await asyncio.gather(*branches)
        except BaseException as exc:
            if is_cancelled_exception(exc):  # gather ends at the first branch's cancellation: wait for the others
                await workflow.wait(branches)
            raise
        return self.stopped is None

    def _stop(self, reason: str) -> bool:
        if self.stopped is None:
            pending = [self._pending_label(k) for k in self._keys if k not in self.outputs]
            self.stopped = self._ledger.stop_summary(reason, pending + self._later)
        return False
