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
    FunctionTool,
    MaxTurnsExceeded,
    ModelBehaviorError,
    OpenAIResponsesModel,
    RunConfig,
    RunHooks,
    set_tracing_disabled,
)
from openai.types.responses import ResponseCompletedEvent
from pydantic import BaseModel
from temporalio.exceptions import ApplicationError

from activities.black_box.engine import BlackBoxTools
from activities.black_box.progress import AgentProgress
from activities.black_box.streamed_run import run_agent
from activities.pricing import cost_usd
from activities.providers.errors import connection_error, http_error
from activities.providers.openai_provider import OpenAIProvider
from models.blackbox import InvokeAgentRequest, InvokeAgentResult
from models.conversation import ToolCall
from telemetry.observe import generation
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

    async def stream_response(
        self, system_instructions: Any, input: Any, model_settings: Any, tools: Any, *args: Any, **kwargs: Any
    ) -> Any:
        """The streamed call, recorded like `get_response` once its `response.completed` event arrives."""
        observed_input = {
            "system": system_instructions,
            "input": input,
            "tools": [getattr(t, "name", str(t)) for t in tools],
        }
        with generation(name="openai.responses", model=self._full_model, input=observed_input) as observed:
            stream = super().stream_response(system_instructions, input, model_settings, tools, *args, **kwargs)
            async for event in stream:
                if isinstance(event, ResponseCompletedEvent):
                    response = event.response
                    usage = response.usage
                    tokens_in = usage.input_tokens if usage else 0
                    tokens_out = usage.output_tokens if usage else 0
                    observed.finish(
                        output=[item.model_dump(mode="json") for item in response.output],
                        input_tokens=tokens_in,
                        output_tokens=tokens_out,
                        cost_usd=cost_usd(self._full_model, tokens_in, tokens_out),
                    )
                yield event


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
        output_model: type[BaseModel] | None = agent.output
        sdk_agent: Agent[Any] = Agent(
            name=agent.name,
            instructions=agent.instructions,
            tools=[_function_tool(t, tools) for t in tools.definitions],
            model=_ObservedResponsesModel(model=model, openai_client=self._provider.client()),
            output_type=output_model,
        )
        try:
            result = await run_agent(
                sdk_agent,
                request.prompt,
                streaming=self._provider.streaming,
                max_turns=max_turns,
                hooks=_ProgressHooks(progress),
                run_config=RunConfig(tracing_disabled=True, trace_include_sensitive_data=False),
            )
        except MaxTurnsExceeded:
            return progress.result(None, stopped=f"turn ceiling reached: {progress.turns} of max_turns {max_turns}")
        except openai.APIStatusError as exc:
            raise http_error("openai", exc.status_code, exc.message, exc.response.headers) from None
        except (openai.APIConnectionError, openai.APITimeoutError) as exc:
            raise connection_error("openai", exc) from None
        except ModelBehaviorError as exc:  # e.g. a final answer that is not the output schema's JSON
            raise ApplicationError(f"openai agent output rejected: {exc}", type="AgentOutputInvalid") from None
        output = result.final_output
        return progress.result(output.model_dump(mode="json") if isinstance(output, BaseModel) else output)
