"""The `call_llm` activity: one inference, nothing else."""

from __future__ import annotations

from temporalio import activity

from activities.agent_specs import AgentResolver
from activities.conversation_store import ConversationStore
from activities.cooldown import ProviderCooldown
from activities.heartbeat import heartbeating
from activities.providers import LlmProvider
from activities.routing import route
from activities.summarise import SUMMARY_INSTRUCTIONS, split_point, summarised_opening, transcript
from config.settings import Settings
from models.conversation import Conversation, assistant_message
from models.history import RECENT_MESSAGES_KEPT
from models.llm import LlmRequest, LlmResponse
from models.run import Usage
from telemetry.metrics import activity_meter, record_llm_tokens


class LlmActivities:
    """Holds the worker's provider clients so every call reuses their connection pools."""

    def __init__(
        self,
        settings: Settings,
        agents: AgentResolver,
        providers: dict[str, LlmProvider],
        conversations: ConversationStore,
    ) -> None:
        self._settings = settings
        self._agents = agents
        self._cooldown = ProviderCooldown()
        self._providers = providers
        self._conversations = conversations

    @activity.defn(name="call_llm")
    async def call_llm(self, request: LlmRequest) -> LlmResponse:
        """Send the conversation to the model with the agent's instructions and tools; store the reply if kept by reference."""
        model, provider = route(
            model=request.model,
            default_model=self._settings.default_model,
            by_provider=self._providers,
            kind="provider",
        )
        if request.task == "summarise":
            return await self._summarise(request, model, provider)
        agent, tools = await self._agents.resolve(request.agent, request.spec, handoffs=True)
        conversation = await self._conversations.for_model(request.conversation)
        activity.logger.info("calling %s for agent %s (%d messages)", model, agent.name, len(conversation.messages))
        call = provider.complete(
            model=model,
            system=agent.instructions,
            conversation=conversation,
            tools=tools,
            max_tokens=request.max_tokens,
        )
        response = await heartbeating(self._cooldown.run(model.split(":", 1)[0], call))
        record_llm_tokens(
            activity_meter(),
            model=model,
            agent=agent.name,
            input_tokens=response.usage.input_tokens,
            output_tokens=response.usage.output_tokens,
        )
        if request.conversation.by_reference:
            reply = assistant_message(response.text, response.tool_calls)
            response.stored = await self._conversations.append(request.conversation, [reply])
        return response

    async def _summarise(self, request: LlmRequest, model: str, provider: LlmProvider) -> LlmResponse:
        """Replace the older turns of a stored conversation by one summary; the originals stay in the store."""
        messages = await self._conversations.messages(request.conversation)
        cut = split_point(messages, RECENT_MESSAGES_KEPT)
        if cut == 0 or not request.conversation.by_reference:
            return LlmResponse(model=model, stop_reason="nothing_to_summarise", usage=Usage())
        shown = await self._conversations.for_model(request.conversation)
        activity.logger.info("summarising %d of %d messages with %s", cut, len(messages), model)
        response = await heartbeating(
            provider.complete(
                model=model,
                system=SUMMARY_INSTRUCTIONS,
                conversation=Conversation.start(transcript(shown.messages[:cut])),
                tools=[],
                max_tokens=request.max_tokens,
            )
        )
        originals = (
            await self._conversations.append(request.conversation, []) if request.conversation.messages else None
        )
        summary_of = originals.head if originals else request.conversation.head
        stored = await self._conversations.restart(
            [summarised_opening(messages[0], response.text), *messages[cut:]], summary_of
        )
        # History keeps a preview only: the summary itself lives in the store, in the new first message.
        return response.model_copy(
            update={"text": response.text[:200], "tool_calls": [], "stored": stored, "summarised": cut}
        )
