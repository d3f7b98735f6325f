"""The OpenAI Agents SDK, run whole inside one activity: `Runner.run` with registry tools as `FunctionTool`s.

The loop is the SDK's; its policy is every loop's (activities/black_box/engine.py), applied on the SDK's hooks:
the breakers on its run hooks and tool guardrails (openai_breakers.py), the answer in its output type
(openai_output.py), handoffs as its native handoffs (openai_handoffs.py), each model call fitted, counted and
observed in its model (openai_model.py), the run resumed from its own input items (openai_journal.py).

Nothing leaves for OpenAI's trace exporter: tracing is disabled globally and per run, and the
model is built on our own `AsyncOpenAI(max_retries=0)` (which honours `OPENAI_BASE_URL`).
"""

from __future__ import annotations

from typing import Any

from agents import Agent, MaxTurnsExceeded, ModelBehaviorError, RunConfig, TResponseInputItem, set_tracing_disabled
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.black_box.checkpoint import pending_items
from activities.black_box.engine import EngineRun, screened
from activities.black_box.openai_breakers import AgentsSdkBreakers, BreakerTripped
from activities.black_box.openai_crew import Crew, build_crew, seats_of
from activities.black_box.openai_journal import Journal, LedgerHooks
from activities.black_box.openai_model import AllowanceSpent
from activities.black_box.openai_output import Corrections, retry_input
from activities.black_box.streamed_run import run_agent
from activities.providers.openai_provider import OpenAIProvider, classifying_errors
from models.blackbox import InvokeAgentResult
from models.conversation import ToolCall
from models.guardrails import GuardrailPolicy
from tools.handoffs import target_of
from tools.next_step import Stop
from tools.registry import Registry


class OpenAIAgentEngine:
    """`AgentEngine` for `openai:` models, on the worker's one OpenAI client."""

    def __init__(self, provider: OpenAIProvider, registry: Registry) -> None:
        set_tracing_disabled(True)  # the SDK would otherwise export traces (with prompts) to OpenAI
        self._provider = provider
        self._registry = registry

    async def run(self, run: EngineRun) -> InvokeAgentResult:
        """`Runner.run` until a final output or `max_turns`; provider errors classified for Temporal.

        With checkpoints, a retried attempt starts from the items its predecessor journaled, as the agent
        that had the conversation then (after handoffs).
        """
        ledger, corrections = run.ledger, Corrections()
        journal = Journal([{"role": "user", "content": run.request.prompt}], ledger, run.checkpoints, corrections)
        seats = await seats_of(run)
        # This attempt's counts (a resumed one starts them afresh); calls checked against the worker's registry.
        profiles = {name: profile for name, (profile, _) in seats.items()}
        breakers = AgentsSdkBreakers(run.agent.guardrails, run.tools.executor.registry, profiles)
        guard = getattr(self._provider, "spend_guard", None)  # set when SPEND_LIMITS is (activities/spend_guard.py)
        crew = build_crew(run, seats, self._provider.client(), breakers, journal, corrections, guard)
        turn_input = await self._resume(run, crew, journal, corrections)
        hooks = LedgerHooks(ledger, breakers, journal)
        while True:
            try:
                agent = crew.agents[ledger.speaker]
                result = await self._run(agent, crew, turn_input, run.max_turns - ledger.turns, hooks)
            except BreakerTripped as exc:
                return ledger.tripped(exc.stop)
            except MaxTurnsExceeded:
                if breakers.tripped is not None:  # the last round broke a rule; the ceiling came before the check
                    return ledger.tripped(Stop(breakers.tripped))
                return ledger.out_of_turns(run.max_turns)
            except AllowanceSpent as exc:  # before the call: nothing was sent for it
                return ledger.result(None, stopped=str(exc))
            except ModelBehaviorError as exc:  # e.g. a final answer that is not the output schema's JSON
                output = crew.outputs.get(ledger.speaker)
                if output is None or output.sent_back is None:
                    raise ApplicationError(f"openai agent output rejected: {exc}", type="AgentOutputInvalid") from None
                (rejected, verdict), output.sent_back = output.sent_back, None
                corrections.count += 1
                if ledger.turns >= run.max_turns:  # no turn left for the corrected answer, as in every loop
                    return ledger.out_of_turns(run.max_turns)
                turn_input = retry_input(run.request.prompt, exc, rejected, verdict.message)
                await journal.replace(turn_input)  # the journal goes on from the corrected input
                continue
            return ledger.result(result.final_output)

    async def _resume(
        self, run: EngineRun, crew: Crew, journal: Journal, corrections: Corrections
    ) -> str | list[TResponseInputItem]:
        """The input `Runner.run` starts from: the prompt, or what an earlier attempt journaled, with the calls its
        crash cut off run again (same call ids, so the same idempotency keys)."""
        ledger = run.ledger
        restored = await run.checkpoints.restore() if run.checkpoints is not None else None
        if restored is None or restored.items is None:
            return run.request.prompt
        journal.items, corrections.count = restored.items, restored.corrections
        restored.carry_into(ledger, handed_to=restored.agent in crew.agents and restored.agent != run.agent.name)
        if ledger.active:
            ledger.model = crew.models[ledger.active]
        activity.logger.info("resuming agent %s at turn %d", ledger.speaker, ledger.turns)
        for pending in pending_items(journal.items):
            output = await self._rerun(pending, crew, ledger.speaker, run.agent.guardrails)
            await journal.output(pending["call_id"], output)
        return list(journal.items)

    @staticmethod
    async def _rerun(pending: dict[str, Any], crew: Crew, speaker: str, policy: GuardrailPolicy) -> str:
        """The output of a call the crash cut off: a tool runs again (same call id, same key); a handoff whose
        switch was never recorded is not guessed at: the model is told to ask again."""
        if target_of(pending.get("name", "")) is not None:
            return "Error: this handoff was interrupted by a worker restart and did not happen; call it again."
        call = ToolCall.from_json(pending["call_id"], pending["name"], pending.get("arguments"))
        content, _ = screened((await crew.tools[speaker].run(call)).content, policy)
        return content

    async def _run(self, agent: Agent[Any], crew: Crew, turn_input: Any, max_turns: int, hooks: LedgerHooks) -> Any:
        """One `Runner.run` as the agent that has the conversation, provider errors classified for Temporal."""
        with classifying_errors():
            return await run_agent(
                agent,
                turn_input,
                streaming=self._provider.streaming,
                max_turns=max_turns,
                hooks=hooks,
                run_config=RunConfig(
                    tracing_disabled=True,
                    trace_include_sensitive_data=False,
                    # A transfer_to_<agent> it was not offered is an error the model reads, as any unknown tool.
                    tool_not_found_behavior="return_error_to_model",
                    tool_error_formatter=crew.formatter,
                ),
            )
