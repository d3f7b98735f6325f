"""The OpenAI Agents SDK, run whole inside one activity: `Runner.run` with registry tools as `FunctionTool`s.

Nothing leaves for OpenAI's trace exporter: tracing is disabled globally and per run, and the
model is built on our own `AsyncOpenAI(max_retries=0)` (which honours `OPENAI_BASE_URL`).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

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
from openai.types.responses import ResponseCompletedEvent
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.black_box.checkpoint import Checkpoints
from activities.black_box.engine import BlackBoxTools, screened
from activities.black_box.openai_breakers import (
    AgentsSdkBreakers,
    BreakerTripped,
    call_arguments,
)
from activities.black_box.progress import AgentProgress
from activities.black_box.streamed_run import run_agent
from activities.pricing import cost_usd
from activities.providers.errors import connection_error, http_error
from activities.providers.openai_provider import OpenAIProvider
from models.blackbox import InvokeAgentRequest, InvokeAgentResult
from models.budget import estimate_tokens
from models.conversation import ToolCall
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
        """The streamed call, fitted and recorded like `get_response` (once its `response.completed` event arrives)."""
        model_settings = self._fitted(system_instructions, input, tools, model_settings)
        with self._generation(system_instructions, input, tools) as observed:
            stream = super().stream_response(system_instructions, input, model_settings, tools, *args, **kwargs)
            async for event in stream:
                if isinstance(event, ResponseCompletedEvent):
                    self._finish(observed, event.response)
                yield event


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
        if self._checkpoints is not None:
            self._progress.resume = await self._checkpoints.save_items(
                self.items, turns=self._progress.turns, usage=self._progress.usage
            )
            self._progress.heartbeat()


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


def _unknown_tool_message(tools: BlackBoxTools, breakers: AgentsSdkBreakers) -> Any:
    """The SDK's `tool_error_formatter`: a call to a tool the agent lacks gets the `ToolExecutor`'s error result."""

    async def message(args: ToolErrorFormatterArgs[Any]) -> str | None:
        if args.kind != "tool_not_found":
            return None  # the SDK's own message
        outcome = await tools.run(ToolCall(id=args.call_id, name=args.tool_name, arguments={}))
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
        value, problems = check_output(json_str, self._schema)
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
    ) -> InvokeAgentResult:
        """`Runner.run` until a final output or `max_turns`; provider errors classified for Temporal.

        With `checkpoints`, a retried attempt starts from the items its predecessor journaled.
        """
        journal = _Journal([{"role": "user", "content": request.prompt}], progress, checkpoints)
        turn_input: str | list[TResponseInputItem] = request.prompt
        restored = await checkpoints.restore_items() if checkpoints is not None else None
        if restored is not None:
            journal.items, progress.turns, usage = restored
            if usage is not None and usage.llm_calls > progress.usage.llm_calls:
                progress.usage = usage  # the checkpoint is newer than the last heartbeat that got through
            activity.logger.info("resuming agent %s at turn %d", agent.name, progress.turns)
            for pending in _pending_calls(journal.items):  # run again with the same call id: the same key
                arguments = call_arguments(pending.get("arguments") or "{}")
                call = ToolCall(id=pending["call_id"], name=pending["name"], arguments=arguments)
                content, _ = screened((await tools.run(call)).content, agent.guardrails)
                await journal.add([{"type": "function_call_output", "call_id": call.id, "output": content}])
            turn_input = list(journal.items)
        output = JsonSchemaOutput(agent.name, agent.output_schema) if agent.output_schema is not None else None
        breakers = AgentsSdkBreakers(agent.guardrails)  # counts of this attempt (a resumed one starts them afresh)
        sdk_agent: Agent[Any] = Agent(
            name=agent.name,
            instructions=agent.instructions,
            tools=[_function_tool(t, tools, breakers) for t in tools.definitions],
            model=_ObservedResponsesModel(
                model=model,
                openai_client=self._provider.client(),
                progress=progress,
                max_output=request.max_output_tokens,
            ),
            output_type=output,
        )
        hooks = _ProgressHooks(progress, breakers, journal if checkpoints is not None else None)
        run_config = RunConfig(
            tracing_disabled=True,
            trace_include_sensitive_data=False,
            # A call to a tool the agent lacks is an error result for the model (listing its tools), not a crash.
            tool_not_found_behavior="return_error_to_model",
            tool_error_formatter=_unknown_tool_message(tools, breakers),
        )
        for attempt in range(CORRECTIONS + 1):
            try:
                result = await self._run(sdk_agent, turn_input, max_turns - progress.turns, hooks, run_config)
            except BreakerTripped as exc:
                return progress.result(None, stopped=exc.rule, rule=exc.rule.split(":", 1)[0])
            except MaxTurnsExceeded:
                if breakers.tripped is not None:  # the last round broke a rule; the ceiling came before the check
                    return progress.result(None, stopped=breakers.tripped, rule=breakers.tripped.split(":", 1)[0])
                return progress.result(None, stopped=f"turn ceiling reached: {progress.turns} of max_turns {max_turns}")
            except AllowanceSpent as exc:  # before the call: nothing was sent for it
                return progress.result(None, stopped=str(exc))
            except ModelBehaviorError as exc:  # e.g. a final answer that is not the output schema's JSON
                if output is None or output.rejected is None:
                    raise ApplicationError(f"openai agent output rejected: {exc}", type="AgentOutputInvalid") from None
                rejected, problems = output.rejected
                output.rejected = None
                if attempt >= CORRECTIONS or progress.turns >= max_turns:
                    raise output_invalid(agent.name, problems) from None
                turn_input = _retry_input(request.prompt, exc, rejected, problems, agent.output_schema or {})
                if isinstance(turn_input, list):  # the journal goes on from the corrected input
                    journal.items = [_plain(i) for i in turn_input]
                continue
            return progress.result(result.final_output)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _run(
        self, sdk_agent: Agent[Any], turn_input: Any, max_turns: int, hooks: _ProgressHooks, run_config: RunConfig
    ) -> Any:
        """One `Runner.run`, provider errors classified for Temporal."""
        try:
            result = await run_agent(
                sdk_agent,
                turn_input,
                streaming=self._provider.streaming,
                max_turns=max_turns,
                hooks=hooks,
                run_config=run_config,
            )
        except openai.APIStatusError as exc:
            raise http_error("openai", exc.status_code, exc.message, exc.response.headers) from None
        except (openai.APIConnectionError, openai.APITimeoutError) as exc:
            raise connection_error("openai", exc) from None
        return result
