"""The OpenAI Agents SDK, run whole inside one activity: `Runner.run` with registry tools as `FunctionTool`s.

Nothing leaves for OpenAI's trace exporter: tracing is disabled globally and per run, and the
model is built on our own `AsyncOpenAI(max_retries=0)` (which honours `OPENAI_BASE_URL`).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncGenerator
from contextlib import aclosing
from dataclasses import dataclass, field
from typing import Any, cast

import openai
from agents import (
    Agent,
    AgentOutputSchemaBase,
    FunctionTool,
    ItemHelpers,
    MaxTurnsExceeded,
    ModelBehaviorError,
    ModelSettings,
    OpenAIResponsesModel,
    RunConfig,
    RunHooks,
    ToolErrorFormatterArgs,
    TResponseInputItem,
    set_tracing_disabled,
)
from agents.strict_schema import ensure_strict_json_schema
from openai.types.responses import ResponseCompletedEvent, ResponseIncompleteEvent
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.black_box.checkpoint import Checkpoints
from activities.black_box.engine import BlackBoxTools, screened
from activities.black_box.handoffs import HandoffRoster, target_of
from activities.black_box.openai_breakers import (
    AgentsSdkBreakers,
    BreakerTripped,
    call_arguments,
)
from activities.black_box.openai_handoffs import missing_tool_message, native_handoff
from activities.black_box.progress import AgentProgress
from activities.black_box.streamed_run import run_agent
from activities.providers.errors import truncated_stream
from activities.providers.openai_provider import OpenAIProvider, classified, failed_event
from models.blackbox import InvokeAgentRequest, InvokeAgentResult
from models.budget import estimate_tokens
from models.conversation import ToolCall
from models.pricing import cost_usd
from telemetry.observe import generation
from tools.output_check import CORRECTIONS, check_output, correction, output_invalid
from tools.registry import AgentProfile, Registry, Tool


class AllowanceSpent(Exception):
    """The branch's allowance cannot pay for the next model call; raised before it is made, ending `Runner.run`."""


class _ObservedResponsesModel(OpenAIResponsesModel):
    """The Responses API model with each inference recorded as a Langfuse generation (SDK tracing stays off).

    Each inference is first fitted into the branch's allowance: its input estimated, `max_output_tokens` what
    remains after it; a call that cannot fit is not made (`AllowanceSpent`).
    """

    def __init__(
        self, *, model: str, openai_client: openai.AsyncOpenAI, progress: AgentProgress, max_output: int
    ) -> None:
        super().__init__(model=model.split(":", 1)[1], openai_client=openai_client)
        self._full_model = model
        self._progress = progress
        self._max_output = max_output

    def _fitted(self, system_instructions: Any, input: Any, tools: Any, model_settings: ModelSettings) -> ModelSettings:
        """`model_settings` with the call's output allowance; `AllowanceSpent` when the call cannot fit."""
        if self._progress.allowance is None:
            return model_settings
        # No token counting against the Responses API here: the serialised request at 3 characters a token.
        schemas = [getattr(t, "params_json_schema", None) or getattr(t, "name", str(t)) for t in tools]
        estimate = estimate_tokens({"system": system_instructions, "input": input, "tools": schemas})
        fit = self._progress.fit_next_call(
            estimate, min(model_settings.max_tokens or self._max_output, self._max_output)
        )
        if fit.refused is not None:
            raise AllowanceSpent(fit.refused)
        return dataclasses.replace(model_settings, max_tokens=fit.output_tokens)

    def _generation(self, system_instructions: Any, input: Any, tools: Any) -> Any:
        """The Langfuse generation of one inference (tool names only: their schemas are in the agent's spec)."""
        observed_input = {
            "system": system_instructions,
            "input": input,
            "tools": [getattr(t, "name", str(t)) for t in tools],
        }
        return generation(name="openai.responses", model=self._full_model, input=observed_input)

    def _finish(self, observed: Any, response: Any) -> None:
        usage = response.usage
        tokens_in = usage.input_tokens if usage else 0
        tokens_out = usage.output_tokens if usage else 0
        observed.finish(
            output=[item.model_dump(mode="json") if hasattr(item, "model_dump") else item for item in response.output],
            input_tokens=tokens_in,
            output_tokens=tokens_out,
            cost_usd=cost_usd(self._full_model, tokens_in, tokens_out),
        )

    async def get_response(
        self, system_instructions: Any, input: Any, model_settings: Any, tools: Any, *args: Any, **kwargs: Any
    ) -> Any:
        model_settings = self._fitted(system_instructions, input, tools, model_settings)
        with self._generation(system_instructions, input, tools) as observed:
            response = await super().get_response(system_instructions, input, model_settings, tools, *args, **kwargs)
            self._finish(observed, response)
            return response

    async def stream_response(
        self, system_instructions: Any, input: Any, model_settings: Any, tools: Any, *args: Any, **kwargs: Any
    ) -> Any:
        """The streamed call, fitted and recorded like `get_response` (once its `response.completed` event arrives).

        A stream's `error` or `response.failed` event is classified here, where its code is still at hand (the
        SDK would turn it into a `ModelBehaviorError` naming it only in words); a stream that ends without its
        final event is a cut connection (the SDK would say the model produced no final response).
        """
        model_settings = self._fitted(system_instructions, input, tools, model_settings)
        with self._generation(system_instructions, input, tools) as observed:
            finished = False
            # An async generator (typed as an iterator): closed when this one raises, not left to the collector.
            stream = cast(
                AsyncGenerator[Any, None],
                super().stream_response(system_instructions, input, model_settings, tools, *args, **kwargs),
            )
            async with aclosing(stream):
                async for event in stream:
                    if (failure := failed_event(event, None)) is not None:
                        raise failure
                    if isinstance(event, ResponseCompletedEvent):
                        self._finish(observed, event.response)
                    finished = finished or isinstance(event, ResponseCompletedEvent | ResponseIncompleteEvent)
                    yield event
            if not finished:
                raise truncated_stream("openai", "response.completed")


class _Journal:
    """The run's input items as they grow (prompt, each reply's items, each tool output), saved after each.

    A retried attempt starts `Runner.run` from these items instead of the prompt: replies already paid for
    are not asked again, tools already run are not run again (activities/black_box/checkpoint.py).
    """

    def __init__(self, items: list[Any], progress: AgentProgress, checkpoints: Checkpoints | None) -> None:
        self.items = items
        self._progress = progress
        self._checkpoints = checkpoints

    async def add(self, items: list[Any]) -> None:
        self.items.extend(items)
        await self._save()

    async def replace(self, items: list[Any]) -> None:
        """After a handoff: the next agent's input is the journal from now on (saved with the new active agent)."""
        self.items = list(items)
        await self._save()

    async def output(self, call_id: str, text: str) -> None:
        """A tool output the SDK made itself (a refused handoff)."""
        await self.add([{"type": "function_call_output", "call_id": call_id, "output": text}])

    async def _save(self) -> None:
        if self._checkpoints is not None:
            progress = self._progress
            progress.resume = await self._checkpoints.save_items(
                self.items,
                turns=progress.turns,
                usage=progress.usage,
                agent=progress.active or None,
                handoffs=progress.handoffs,
            )
            progress.heartbeat()


def _pending_calls(items: list[Any]) -> list[dict[str, Any]]:
    """Function calls the journal holds without their output (the round a crash cut off)."""
    answered = {i.get("call_id") for i in items if isinstance(i, dict) and i.get("type") == "function_call_output"}
    return [
        i
        for i in items
        if isinstance(i, dict) and i.get("type") == "function_call" and i.get("call_id") not in answered
    ]


class _ProgressHooks(RunHooks[Any]):
    """Counts each inference as a turn, heartbeats it, journals its items, and checks it makes progress.

    Each tool output is journaled as the model is shown it (after the output guardrail marked or withheld it).
    """

    def __init__(self, progress: AgentProgress, breakers: AgentsSdkBreakers, journal: _Journal | None = None) -> None:
        self._progress = progress
        self._breakers = breakers
        self._journal = journal

    async def on_llm_start(self, context: Any, agent: Any, system_prompt: Any, input_items: Any) -> None:
        self._breakers.before_inference()

    async def on_llm_end(self, context: Any, agent: Any, response: Any) -> None:
        usage = response.usage
        calls = [getattr(item, "name", "") for item in response.output if getattr(item, "type", "") == "function_call"]
        self._progress.record_llm(
            usage.input_tokens, usage.output_tokens, f"asked for {', '.join(calls)}" if calls else "answered"
        )
        if self._journal is not None:
            await self._journal.add([_plain(i) for i in response.to_input_items()])
        self._breakers.after_reply(response)  # the reply is paid for and journaled; its calls have not run

    async def on_tool_end(self, context: Any, agent: Any, tool: Any, result: object) -> None:
        if self._journal is not None:
            call_id = getattr(context, "tool_call_id", "call")
            await self._journal.add([{"type": "function_call_output", "call_id": call_id, "output": str(result)}])


def _plain(item: Any) -> Any:
    return item.model_dump(mode="json", exclude_unset=True) if hasattr(item, "model_dump") else item


def _function_tool(tool: Tool, tools: BlackBoxTools, breakers: AgentsSdkBreakers) -> FunctionTool:
    """A registry tool for the SDK, run through the worker's `ToolExecutor`, guarded before and after each call."""

    async def invoke(ctx: Any, arguments: str) -> str:
        call_id = getattr(ctx, "tool_call_id", "call")
        try:
            parsed = json.loads(arguments or "{}")
        except json.JSONDecodeError as exc:
            breakers.ran(call_id, is_error=True)
            return f"Error: arguments are not JSON ({exc.msg})"
        call = ToolCall(id=call_id, name=tool.name, arguments=parsed if isinstance(parsed, dict) else {})
        outcome = await tools.run(call)
        breakers.ran(call_id, outcome.is_error)
        return outcome.content

    # Not strict: the registry's pydantic models validate the arguments, with errors the model can act on.
    return FunctionTool(
        name=tool.name,
        description=tool.description,
        params_json_schema=tool.input_schema(),
        on_invoke_tool=invoke,
        strict_json_schema=False,
        tool_output_guardrails=[breakers.output_guardrail],
    )


def _missing_tool_message(crew: _Crew, progress: AgentProgress, breakers: AgentsSdkBreakers, transfers: Any) -> Any:
    """The SDK's `tool_error_formatter` for a call to a tool the active agent lacks: a `transfer_to_<agent>` it
    was not offered gets the handoff's refusal (`transfers`); any other name the `ToolExecutor`'s error result,
    counted by the breakers."""

    async def message(args: ToolErrorFormatterArgs[Any]) -> str | None:
        if args.kind != "tool_not_found":
            return None  # the SDK's own message
        if target_of(args.tool_name) is not None:
            text: str | None = await transfers(args)
            return text
        outcome = await crew.tools[progress.speaker].run(ToolCall(id=args.call_id, name=args.tool_name, arguments={}))
        breakers.refused()
        return outcome.content

    return message


class JsonSchemaOutput(AgentOutputSchemaBase):
    """The agent's `output_schema` as the SDK's output type: validated with jsonschema, strict only where it can be."""

    def __init__(self, agent: str, schema: dict[str, Any]) -> None:
        self._agent = agent
        self._schema = schema
        self._strict = _strict_compatible(schema)
        self.rejected: tuple[str, str] | None = None
        """The last reply that did not validate, and its problems."""

    def is_plain_text(self) -> bool:
        return False

    def name(self) -> str:
        return str(self._schema.get("title") or f"{self._agent}_output")

    def json_schema(self) -> dict[str, Any]:
        return self._schema

    def is_strict_json_schema(self) -> bool:
        return self._strict

    def validate_json(self, json_str: str) -> Any:
        value, problems = check_output(json_str, self._schema, self._agent)
        if problems is not None:
            self.rejected = (json_str, problems)
            raise ModelBehaviorError(f"output does not match the output_schema: {problems}")
        return value


def _strict_compatible(schema: dict[str, Any]) -> bool:
    """Whether OpenAI's strict mode accepts `schema` unchanged (every property required, no extra keys)."""
    try:
        return ensure_strict_json_schema(json.loads(json.dumps(schema))) == schema
    except Exception:
        return False


def _retry_input(
    prompt: str, exc: ModelBehaviorError, rejected: str, problems: str, schema: dict[str, Any]
) -> list[TResponseInputItem]:
    """The conversation so far (what the SDK recorded, else the prompt), the rejected reply and the correction."""
    data = exc.run_data
    items: list[TResponseInputItem] = ItemHelpers.input_to_new_input_list(data.input if data else prompt)
    if data is not None:
        items += [item.to_input_item() for item in data.new_items]
    items.append({"role": "assistant", "content": rejected})
    items.append({"role": "user", "content": correction(problems, schema)})
    return items


@dataclass
class _Crew:
    """The SDK agents one black box can run as (its own and its handoff targets'), by name."""

    profiles: dict[str, AgentProfile]
    agents: dict[str, Agent[Any]] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)
    tools: dict[str, BlackBoxTools] = field(default_factory=dict)
    outputs: dict[str, JsonSchemaOutput] = field(default_factory=dict)
    unreachable: dict[str, str] = field(default_factory=dict)
    """Targets on another provider, and why a handoff to them is refused."""
    formatter: Any = None


class OpenAIAgentEngine:
    """`AgentEngine` for `openai:` models, on the worker's one OpenAI client."""

    def __init__(self, provider: OpenAIProvider, registry: Registry) -> None:
        set_tracing_disabled(True)  # the SDK would otherwise export traces (with prompts) to OpenAI
        self._provider = provider
        self._registry = registry

    async def run(
        self,
        *,
        agent: AgentProfile,
        request: InvokeAgentRequest,
        model: str,
        max_turns: int,
        progress: AgentProgress,
        tools: BlackBoxTools,
        checkpoints: Checkpoints | None = None,
        roster: HandoffRoster | None = None,
    ) -> InvokeAgentResult:
        """`Runner.run` until a final output or `max_turns`; provider errors classified for Temporal.

        With `checkpoints`, a retried attempt starts from the items its predecessor journaled, as the agent
        that had the conversation then (after handoffs).
        """
        journal = _Journal([{"role": "user", "content": request.prompt}], progress, checkpoints)
        turn_input: str | list[TResponseInputItem] = request.prompt
        breakers = AgentsSdkBreakers(agent.guardrails)  # counts of this attempt (a resumed one starts them afresh)
        crew = await self._crew(
            agent, request, model, progress, tools, breakers, journal if checkpoints else None, roster
        )
        restored = await checkpoints.restore_items() if checkpoints is not None else None
        if restored is not None:
            journal.items, progress.turns = restored.items, restored.turns
            if restored.usage is not None and restored.usage.llm_calls > progress.usage.llm_calls:
                progress.usage = restored.usage  # the checkpoint is newer than the last heartbeat that got through
            if restored.agent is not None and restored.agent in crew.agents and restored.agent != agent.name:
                progress.handoffs, progress.active = list(restored.handoffs), restored.agent
                progress.model = crew.models[restored.agent]
            activity.logger.info("resuming agent %s at turn %d", progress.speaker, progress.turns)
            for pending in _pending_calls(journal.items):  # run again with the same call id: the same key
                await journal.output(pending["call_id"], await self._rerun(pending, crew, progress.speaker))
            turn_input = list(journal.items)
        hooks = _ProgressHooks(progress, breakers, journal if checkpoints is not None else None)
        for attempt in range(CORRECTIONS + 1):
            speaker = progress.speaker
            try:
                result = await self._run(crew.agents[speaker], turn_input, max_turns - progress.turns, hooks, crew)
            except BreakerTripped as exc:
                return progress.result(None, stopped=exc.rule, rule=exc.rule.split(":", 1)[0])
            except MaxTurnsExceeded:
                if breakers.tripped is not None:  # the last round broke a rule; the ceiling came before the check
                    return progress.result(None, stopped=breakers.tripped, rule=breakers.tripped.split(":", 1)[0])
                return progress.result(None, stopped=f"turn ceiling reached: {progress.turns} of max_turns {max_turns}")
            except AllowanceSpent as exc:  # before the call: nothing was sent for it
                return progress.result(None, stopped=str(exc))
            except ModelBehaviorError as exc:  # e.g. a final answer that is not the output schema's JSON
                output = crew.outputs.get(progress.speaker)
                if output is None or output.rejected is None:
                    raise ApplicationError(f"openai agent output rejected: {exc}", type="AgentOutputInvalid") from None
                rejected, problems = output.rejected
                output.rejected = None
                if attempt >= CORRECTIONS or progress.turns >= max_turns:
                    raise output_invalid(progress.speaker, problems) from None
                turn_input = _retry_input(request.prompt, exc, rejected, problems, output.json_schema())
                if isinstance(turn_input, list):  # the journal goes on from the corrected input
                    journal.items = [_plain(i) for i in turn_input]
                continue
            return progress.result(result.final_output)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _crew(
        self,
        agent: AgentProfile,
        request: InvokeAgentRequest,
        model: str,
        progress: AgentProgress,
        tools: BlackBoxTools,
        breakers: AgentsSdkBreakers,
        journal: _Journal | None,
        roster: HandoffRoster | None,
    ) -> _Crew:
        """The SDK agent of `agent` and of every agent it can hand off to, wired with native handoffs."""
        seats = {agent.name: (agent, tools.definitions)}
        for name, other in (await roster.everyone() if roster is not None else {}).items():
            seats.setdefault(name, (other.profile, other.definitions))
        crew = _Crew(profiles={name: p for name, (p, _) in seats.items()})
        for name, (profile, definitions) in seats.items():
            crew.models[name] = profile.model or model
            if name != agent.name and not crew.models[name].startswith("openai:"):
                crew.unreachable[name] = (
                    f"Error: agent {name!r} runs on {crew.models[name]!r}; this black box runs on the OpenAI Agents "
                    "SDK and cannot hand off to another provider's agent."
                )
                continue
            bound = dataclasses.replace(tools, agent=profile, definitions=definitions)
            crew.tools[name] = bound
            if profile.output_schema is not None:
                crew.outputs[name] = JsonSchemaOutput(name, profile.output_schema)
            crew.agents[name] = Agent(
                name=name,
                instructions=profile.instructions,
                tools=[_function_tool(t, bound, breakers) for t in definitions],
                model=_ObservedResponsesModel(
                    model=crew.models[name],
                    openai_client=self._provider.client(),
                    progress=progress,
                    max_output=request.max_output_tokens,
                ),
                output_type=crew.outputs.get(name),
            )
        reset = journal.replace if journal is not None else None
        for name, sdk_agent in crew.agents.items():
            source = crew.profiles[name]
            sdk_agent.handoffs = [
                native_handoff(
                    source, crew.profiles[t], crew.agents[t], crew.models[t], progress, request.prompt, reset
                )
                for t in source.handoffs
                if t in crew.agents
            ]
        crew.formatter = _missing_tool_message(
            crew,
            progress,
            breakers,
            missing_tool_message(
                crew.profiles, progress, crew.unreachable, journal.output if journal is not None else None
            ),
        )
        return crew

    @staticmethod
    async def _rerun(pending: dict[str, Any], crew: _Crew, speaker: str) -> str:
        """The output of a call the crash cut off: a tool runs again (same call id, same key); a handoff whose
        switch was never recorded is not guessed at: the model is told to ask again."""
        if target_of(pending.get("name", "")) is not None:
            return "Error: this handoff was interrupted by a worker restart and did not happen; call it again."
        call = ToolCall(
            id=pending["call_id"], name=pending["name"], arguments=call_arguments(pending.get("arguments") or "{}")
        )
        tools = crew.tools[speaker]
        content, _ = screened((await tools.run(call)).content, tools.agent.guardrails)
        return content

    async def _run(
        self, sdk_agent: Agent[Any], turn_input: Any, max_turns: int, hooks: _ProgressHooks, crew: _Crew
    ) -> Any:
        """One `Runner.run`, provider errors classified for Temporal."""
        try:
            result = await run_agent(
                sdk_agent,
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
        except openai.APIError as exc:
            raise classified(exc) from None
        return result
