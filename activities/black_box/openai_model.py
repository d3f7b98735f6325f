"""The Agents SDK's Responses model with the loop policy every model call of a run gets.

Each inference is fitted into the branch's allowance first (its input estimated by models/budget.py's
`input_estimate`, from the API's own count; `max_output_tokens` what remains after it; a call that cannot fit is
not made), recorded as a Langfuse generation in the shape `call_llm`'s are (`llm_generation`), and a failed or cut
stream is classified as `call_llm` classifies it (`checked_events`). SDK tracing stays off.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any, cast

import openai
from agents import Handoff, ModelSettings, OpenAIResponsesModel
from openai.types.responses import ResponseCompletedEvent

from activities.black_box.ledger import AgentLedger
from activities.providers.openai_provider import checked_events, counted_input, to_llm_response
from activities.spend_guard import Hold, SpendGuard
from models.budget import estimate_tokens, input_estimate
from telemetry.observe import Generation, llm_generation

COUNTED_FIELDS = frozenset(
    {"model", "instructions", "input", "tools", "tool_choice", "parallel_tool_calls", "text", "reasoning"}
)
"""The request fields `responses.input_tokens.count` takes: what the call's input tokens are made of."""


class AllowanceSpent(Exception):
    """The branch's allowance cannot pay for the next model call; raised before it is made, ending `Runner.run`."""


class FittedResponsesModel(OpenAIResponsesModel):
    """`OpenAIResponsesModel` for one agent of a black box: each call fitted, counted, observed and classified."""

    def __init__(
        self,
        *,
        model: str,
        openai_client: openai.AsyncOpenAI,
        ledger: AgentLedger,
        max_output: int,
        guard: SpendGuard | None = None,
    ) -> None:
        super().__init__(model=model.split(":", 1)[1], openai_client=openai_client)
        self._guard = guard
        self._full_model = model
        self._openai = openai_client
        self._ledger = ledger
        self._max_output = max_output

    async def _fitted(
        self,
        system: Any,
        input: Any,
        settings: ModelSettings,
        tools: Any,
        output_schema: Any,
        handoffs: list[Handoff[Any, Any]],
    ) -> ModelSettings:
        """`settings` with the call's output allowance; `AllowanceSpent` when the call cannot fit."""
        if self._ledger.allowance is None:  # runs recorded before allowances: every call their turns allow
            return settings

        async def estimate() -> int:
            schemas = [getattr(t, "params_json_schema", None) or getattr(t, "name", str(t)) for t in tools]
            whole = {"system": system, "input": input, "tools": schemas}
            request = self._count_request(system, input, settings, tools, output_schema, handoffs)
            counted = await counted_input(self._openai, request) if request is not None else None
            return input_estimate(whole=whole, counted=counted)

        fit = await self._ledger.fit_turn(estimate, min(settings.max_tokens or self._max_output, self._max_output))
        if fit.refused is not None:
            raise AllowanceSpent(fit.refused)
        return dataclasses.replace(settings, max_tokens=fit.output_tokens)

    def _count_request(self, *request: Any) -> dict[str, Any] | None:
        """What the call will send that counts as input, built by the SDK's own request builder (so the count is of
        this very request); None where that builder is not there to ask (the estimate goes on without a count)."""
        try:
            kwargs = self._build_response_create_kwargs(*request)
        except Exception:
            return None
        return {k: v for k, v in kwargs.items() if k in COUNTED_FIELDS}

    def _generation(self, system: Any, input: Any, tools: Any, settings: ModelSettings) -> Any:
        return llm_generation(
            name="openai.responses",
            model=self._full_model,
            system=system,
            messages=input,
            tools=[getattr(t, "name", str(t)) for t in tools],
            max_tokens=settings.max_tokens,
        )

    def _finish(self, observed: Generation, response: Any) -> None:
        observed.finish_response(to_llm_response(self._full_model, response.output, response.usage))

    async def _prepared(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[inspect.BoundArguments, Any]:
        """The SDK's call (its arguments, passed by position or by name) fitted into the allowance, and the
        generation to record it in."""
        bound = _CALL.bind(self, *args, **kwargs)
        call = bound.arguments
        call["model_settings"] = await self._fitted(
            call["system_instructions"],
            call["input"],
            call["model_settings"],
            call["tools"],
            call["output_schema"],
            call["handoffs"],
        )
        return bound, self._generation(
            call["system_instructions"], call["input"], call["tools"], call["model_settings"]
        )

    async def _hold(self, bound: inspect.BoundArguments) -> Hold | None:
        """The call's reservation against SPEND_LIMITS (activities/spend_guard.py), None when there are none."""
        if self._guard is None:
            return None
        call = bound.arguments
        schemas = [getattr(t, "params_json_schema", None) or getattr(t, "name", str(t)) for t in call["tools"]]
        estimate = estimate_tokens({"system": call["system_instructions"], "input": call["input"], "tools": schemas})
        output = call["model_settings"].max_tokens or self._max_output
        return await self._guard.reserve(model=self._full_model, input_tokens=estimate, max_output=output)

    async def get_response(self, *args: Any, **kwargs: Any) -> Any:
        bound, generation = await self._prepared(args, kwargs)
        hold, response = await self._hold(bound), None
        try:
            with generation as observed:
                response = await super().get_response(*bound.args[1:], **bound.kwargs)
                self._finish(observed, response)
        except BaseException as exc:
            if hold is not None:
                await asyncio.shield(hold.end(_usage(response), exc))
            raise
        if hold is not None:
            await asyncio.shield(hold.end(_usage(response), None))
        return response

    async def stream_response(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        """The streamed call, fitted and recorded like `get_response` (once its `response.completed` arrives).

        A stream's `error` or `response.failed` event is classified here, where its code is still at hand (the
        SDK would turn it into a `ModelBehaviorError` naming it only in words); a stream that ends without its
        final event is a cut connection (the SDK would say the model produced no final response).
        """
        bound, generation = await self._prepared(args, kwargs)
        hold, completed = await self._hold(bound), None
        try:
            async with aclosing(cast(AsyncGenerator[Any, None], self._streamed(bound, generation))) as events:
                async for event in events:
                    if isinstance(event, ResponseCompletedEvent):
                        completed = event.response
                    yield event
        except BaseException as exc:  # a consumer that stops after the final event (GeneratorExit) settles it
            if hold is not None:
                await asyncio.shield(hold.end(_usage(completed), exc))
            raise
        if hold is not None:
            await asyncio.shield(hold.end(_usage(completed), None))

    async def _streamed(self, bound: inspect.BoundArguments, generation: Any) -> AsyncIterator[Any]:
        with generation as observed:
            # An async generator (typed as an iterator): closed when this one raises, not left to the collector.
            stream = cast(AsyncGenerator[Any, None], super().stream_response(*bound.args[1:], **bound.kwargs))
            async with aclosing(stream):
                async for event in checked_events(stream, None):
                    if isinstance(event, ResponseCompletedEvent):
                        self._finish(observed, event.response)
                    yield event


def _usage(response: Any) -> tuple[int, int] | None:
    """What a Responses reply was billed, (input, output); None without a reply."""
    usage = getattr(response, "usage", None)
    return None if usage is None else (usage.input_tokens, usage.output_tokens)


_CALL = inspect.signature(OpenAIResponsesModel.get_response)
"""How the SDK calls a model (`stream_response` takes the same): named so one wrapper serves both."""
