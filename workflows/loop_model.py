"""The model steps of the pattern-B loop: each `call_llm` fitted into what the run has left, and summaries.

`SteeredLoop` decides when to call; this module makes the call for the agent in its seat.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from temporalio import workflow

from workflows import calls, patches

with workflow.unsafe.imports_passed_through():
    from models.budget import BUDGET_ESTIMATES_PATCH, CallFit, estimate_call_input
    from models.conversation import Conversation
    from models.errors import LlmCallFailed
    from models.history import RECENT_MESSAGES_KEPT
    from models.llm import DEFAULT_MAX_OUTPUT_TOKENS, SUMMARY_MAX_OUTPUT_TOKENS, LlmRequest, LlmResponse
    from tools.final_answer import instructions_for
    from tools.registry import AgentProfile, Registry
    from workflows.carry import LoopState
    from workflows.ledger import RunLedger


SCHEMA_IN_INSTRUCTIONS_PATCH = "schema-in-instructions"
"""Runs recorded before `call_llm` told the model its output schema estimated their calls without it."""


@dataclass
class Seat:
    """The agent the loop runs as now and where its calls go; a handoff gives the loop a new seat."""

    agent: AgentProfile
    spec: str | None
    """The pinned spec's digest, sent with every call_llm (None for runs recorded before pinning)."""
    model: str | None
    llm_task_queue: str | None = None
    """The provider's own task queue (LLM_RATE_LIMITS), or None: the run's."""
    priced_model: str | None = None
    """The model the next call is priced at: the seat's, then the one the last reply named (None: the dearest)."""


class ModelSteps:
    """Makes one loop's model calls as steps of its ledger."""

    def __init__(self, *, registry: Registry, ledger: RunLedger, step_label: str) -> None:
        self._registry = registry
        self._ledger = ledger
        self._label = step_label

    def fit(self, seat: Seat, state: LoopState, default_output: int) -> CallFit | None:
        """The next call's output allowance after its estimated input (models/budget.py `input_estimate`, as every
        loop estimates it), or its refusal (None: runs recorded before estimates)."""
        if not patches.patched(BUDGET_ESTIMATES_PATCH):
            return None
        try:
            tools = self._registry.tools_of(seat.agent)
        except KeyError:  # a tool the workflow's registry lacks: the estimate goes without its declaration
            tools = []
        agent = seat.agent
        told = patches.patched(SCHEMA_IN_INSTRUCTIONS_PATCH) and seat.spec is not None
        estimate = estimate_call_input(
            system=instructions_for(agent.instructions, agent.output_schema if told else None),
            tools=[{"name": t.name, "description": t.description, "input_schema": t.input_schema()} for t in tools],
            conversation=state.conversation,
            context_tokens=state.context_tokens,
        )
        return self._ledger.fit_next_call(estimate, seat.priced_model, default_output)

    async def summarise(self, seat: Seat, state: LoopState) -> bool:
        """One `call_llm` step condenses the older turns; the conversation then points at the shorter chain.

        False when the budget left no room for it: the next reply's own estimate decides whether the run goes on.
        """
        fit = self.fit(seat, state, SUMMARY_MAX_OUTPUT_TOKENS)  # its input is at most the context measured last
        if fit is not None and fit.refused is not None:
            return False
        state.context_tokens = 0  # measured again by the next reply
        if state.conversation.length <= RECENT_MESSAGES_KEPT + 2:
            return True  # too few turns to condense: the context is big because of the recent ones
        response = await self.call(
            seat, state.conversation, task="summarise", max_tokens=fit.output_tokens if fit else None
        )
        if response.stored is not None:
            state.conversation.adopt(response.stored)
        if response.summarised:
            self._ledger.record_usage(response.usage, f"LLM summarised {response.summarised} earlier messages")
        return True

    async def call(
        self,
        seat: Seat,
        conversation: Conversation,
        task: Literal["reply", "summarise"] = "reply",
        max_tokens: int | None = None,
    ) -> LlmResponse:
        """One `call_llm` step; `max_tokens` is its fitted output allowance (None: runs recorded before estimates)."""
        summarising = task == "summarise"
        default = SUMMARY_MAX_OUTPUT_TOKENS if summarising else DEFAULT_MAX_OUTPUT_TOKENS
        request = LlmRequest(
            agent=seat.agent.name,
            spec=seat.spec,
            model=seat.model,
            conversation=conversation,
            max_tokens=max_tokens if max_tokens is not None else self._ledger.output_allowance(default),
            task=task,
        )
        step = self._ledger.steps + 1
        what = "summarise earlier turns" if summarising else seat.agent.name
        try:
            return await calls.call_llm(
                request,
                summary=f"{self._label}step {step}: call_llm ({what})",
                where=f"at step {step}",
                task_queue=seat.llm_task_queue,
            )
        except LlmCallFailed as exc:
            if exc.spent is not None and exc.spent.llm_calls:  # replies its failed attempts were billed for
                self._ledger.record_usage(exc.spent, "LLM replies of failed call_llm attempts")
            raise
