"""The OpenAI Agents SDK, run whole inside one activity: `Runner.run` with registry tools as `FunctionTool`s.

Nothing leaves for OpenAI's trace exporter: tracing is disabled globally and per run, and the
model is built on our own `AsyncOpenAI(max_retries=0)` (which honours `OPENAI_BASE_URL`).
"""

from __future__ import annotations

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
    OpenAIResponsesModel,
    RunConfig,
    RunHooks,
    Runner,
    TResponseInputItem,
    set_tracing_disabled,
)
from agents.strict_schema import ensure_strict_json_schema
from temporalio.exceptions import ApplicationError

from activities.black_box.engine import BlackBoxTools
from activities.black_box.progress import AgentProgress
from activities.pricing import cost_usd
from activities.providers.errors import connection_error, http_error
from activities.providers.openai_provider import OpenAIProvider
from models.blackbox import InvokeAgentRequest, InvokeAgentResult
from models.conversation import ToolCall
from telemetry.observe import generation
from tools.output_check import CORRECTIONS, check_output, correction, output_invalid
from tools.registry import AgentProfile, Registry, Tool


class _ObservedResponsesModel(OpenAIResponsesModel):
    """The Responses API model with each inference recorded as a Langfuse generation (SDK tracing stays off)."""

    def __init__(self, *, model: str, openai_client: openai.AsyncOpenAI) -> None:
        super().__init__(model=model.split(":", 1)[1], openai_client=openai_client)
        self._full_model = model

    async def get_response(
        self, system_instructions: Any, input: Any, model_settings: Any, tools: Any, *args: Any, **kwargs: Any
    ) -> Any:
        observed_input = {
            "system": system_instructions,
            "input": input,
            "tools": [getattr(t, "name", str(t)) for t in tools],
        }
        with generation(name="openai.responses", model=self._full_model, input=observed_input) as observed:
            response = await super().get_response(system_instructions, input, model_settings, tools, *args, **kwargs)
            tokens_in, tokens_out = response.usage.input_tokens, response.usage.output_tokens
            observed.finish(
                output=[
                    item.model_dump(mode="json") if hasattr(item, "model_dump") else item for item in response.output
                ],
                input_tokens=tokens_in,
                output_tokens=tokens_out,
                cost_usd=cost_usd(self._full_model, tokens_in, tokens_out),
            )
            return response


class _ProgressHooks(RunHooks[Any]):
    """Counts each inference as a turn and heartbeats it."""

    def __init__(self, progress: AgentProgress) -> None:
        self._progress = progress

    async def on_llm_end(self, context: Any, agent: Any, response: Any) -> None:
        usage = response.usage
        calls = [getattr(item, "name", "") for item in response.output if getattr(item, "type", "") == "function_call"]
        self._progress.record_llm(
            usage.input_tokens, usage.output_tokens, f"asked for {', '.join(calls)}" if calls else "answered"
        )


def _function_tool(tool: Tool, tools: BlackBoxTools) -> FunctionTool:
    async def invoke(ctx: Any, arguments: str) -> str:
        try:
            parsed = json.loads(arguments or "{}")
        except json.JSONDecodeError as exc:
            return f"Error: arguments are not JSON ({exc.msg})"
        call = ToolCall(
            id=getattr(ctx, "tool_call_id", "call"),
            name=tool.name,
            arguments=parsed if isinstance(parsed, dict) else {},
        )
        return (await tools.run(call)).content

    # Not strict: the registry's pydantic models validate the arguments, with errors the model can act on.
    return FunctionTool(
        name=tool.name,
        description=tool.description,
        params_json_schema=tool.input_schema(),
        on_invoke_tool=invoke,
        strict_json_schema=False,
    )


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
    ) -> InvokeAgentResult:
        """`Runner.run` until a final output or `max_turns`; provider errors classified for Temporal."""
        output = JsonSchemaOutput(agent.name, agent.output_schema) if agent.output_schema is not None else None
        sdk_agent: Agent[Any] = Agent(
            name=agent.name,
            instructions=agent.instructions,
            tools=[_function_tool(t, tools) for t in tools.definitions],
            model=_ObservedResponsesModel(model=model, openai_client=self._provider.client()),
            output_type=output,
        )
        turn_input: str | list[TResponseInputItem] = request.prompt
        for attempt in range(CORRECTIONS + 1):
            try:
                result = await self._run(sdk_agent, turn_input, max_turns - progress.turns, progress)
            except MaxTurnsExceeded:
                return progress.result(None, stopped=f"turn ceiling reached: {progress.turns} of max_turns {max_turns}")
            except ModelBehaviorError as exc:  # e.g. a final answer that is not the output schema's JSON
                if output is None or output.rejected is None:
                    raise ApplicationError(f"openai agent output rejected: {exc}", type="AgentOutputInvalid") from None
                rejected, problems = output.rejected
                output.rejected = None
                if attempt >= CORRECTIONS or progress.turns >= max_turns:
                    raise output_invalid(agent.name, problems) from None
                turn_input = _retry_input(request.prompt, exc, rejected, problems, agent.output_schema or {})
                continue
            return progress.result(result.final_output)
        raise AssertionError("unreachable: the last attempt returns or raises")

    async def _run(self, sdk_agent: Agent[Any], turn_input: Any, max_turns: int, progress: AgentProgress) -> Any:
        """One `Runner.run`, provider errors classified for Temporal."""
        try:
            return await Runner.run(
                sdk_agent,
                turn_input,
                max_turns=max_turns,
                hooks=_ProgressHooks(progress),
                run_config=RunConfig(tracing_disabled=True, trace_include_sensitive_data=False),
            )
        except openai.APIStatusError as exc:
            raise http_error("openai", exc.status_code, exc.message, exc.response.headers) from None
        except (openai.APIConnectionError, openai.APITimeoutError) as exc:
            raise connection_error("openai", exc) from None
