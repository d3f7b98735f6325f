"""The `call_llm` activity: one inference, nothing else."""

from __future__ import annotations

from temporalio import activity

from activities.heartbeat import heartbeating
from activities.providers import LlmProvider
from activities.providers.errors import config_error
from config.settings import Settings
from models.llm import LlmRequest, LlmResponse
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
        model = request.model or self._settings.default_model
        provider_name = model.split(":", 1)[0]
        provider = self._providers.get(provider_name)
        if provider is None:
            raise config_error(f"no provider {provider_name!r} on this worker (have: {', '.join(self._providers)})")
        try:
            agent = self._registry.agent(request.agent)
        except KeyError as exc:
            raise config_error(str(exc.args[0])) from None
        activity.logger.info("calling %s for agent %s (%d messages)", model, agent.name, len(request.conversation.messages))
        return await heartbeating(
            provider.complete(
                model=model,
                system=agent.instructions,
                conversation=request.conversation,
                tools=self._registry.tools_of(agent),
                max_tokens=request.max_tokens,
            )
        )
