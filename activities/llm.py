"""The `call_llm` activity: one inference, nothing else."""

from __future__ import annotations

from temporalio import activity

from activities.heartbeat import heartbeating
from activities.providers import LlmProvider
from activities.routing import route
from config.settings import Settings
from models.llm import LlmRequest, LlmResponse
from telemetry.metrics import record_llm_tokens
from tools.registry import Registry


class LlmActivities:
    """Holds the worker's provider clients so every call reuses their connection pools."""

    def __init__(self, settings: Settings, registry: Registry, providers: dict[str, LlmProvider]) -> None:
        self._settings = settings
        self._registry = registry
        self._providers = providers

    @activity.defn(name="call_llm")
    async def call_llm(self, request: LlmRequest) -> LlmResponse:
        """Send the conversation to the model with the agent's instructions and tools."""
        model, provider, agent = route(
            model=request.model, default_model=self._settings.default_model, by_provider=self._providers,
            kind="provider", registry=self._registry, agent=request.agent,
        )
        activity.logger.info("calling %s for agent %s (%d messages)", model, agent.name, len(request.conversation.messages))
        response = await heartbeating(
            provider.complete(
                model=model,
                system=agent.instructions,
                conversation=request.conversation,
                tools=self._registry.tools_of(agent),
                max_tokens=request.max_tokens,
            )
        )
        record_llm_tokens(
            activity.metric_meter(), model=model, agent=agent.name,
            input_tokens=response.usage.input_tokens, output_tokens=response.usage.output_tokens,
        )
        return response
