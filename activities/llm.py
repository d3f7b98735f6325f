"""The `call_llm` activity: one inference, nothing else."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.agent_specs import AgentResolver
from activities.conversation_store import ConversationStore
from activities.cooldown import ProviderCooldown
from activities.heartbeat import carried_spend, heartbeating
from activities.progress_publisher import publishing
from activities.providers import LlmProvider
from activities.routing import route
from activities.summarise import SUMMARY_INSTRUCTIONS, split_point, summarised_opening, transcript
from config.settings import Settings
from models.conversation import Conversation, assistant_message
from models.history import RECENT_MESSAGES_KEPT
from models.llm import LlmRequest, LlmResponse
from models.run import Usage
from telemetry.metrics import activity_meter, record_llm_tokens
from tools.final_answer import instructions_for


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
        earlier = carried_spend()  # replies earlier attempts were billed for before they failed
        try:
            call = provider.complete(
                model=model,
                # As a black box's: the answer's shape is told up front (runs recorded before pinning check none).
                system=instructions_for(agent.instructions, agent.output_schema if request.spec is not None else None),
                conversation=conversation,
                tools=tools,
                max_tokens=request.max_tokens,
            )
            async with publishing(request.progress):
                response = await heartbeating(
                    self._cooldown.run(model.split(":", 1)[0], call),
                    lambda: activity.heartbeat({"usage": earlier.model_dump()}),  # carried on, never reset
                )
        except ApplicationError as exc:  # a refused or failed call is not billed; earlier attempts' replies were
            raise with_spend(exc, earlier) from exc
        spent = earlier.add(response.usage)
        activity.heartbeat({"usage": spent.model_dump()})  # should this attempt fail now, the next one counts it
        if earlier.llm_calls:
            response.earlier_attempts = earlier
        try:
            return await self._keep(request, model, agent.name, response)
        except Exception as exc:  # the reply was paid for: the failure reports it, the workflow counts it
            raise with_spend(exc, spent) from exc

    async def _keep(self, request: LlmRequest, model: str, agent: str, response: LlmResponse) -> LlmResponse:
        """Count the reply's tokens and, for a conversation kept by reference, store it."""
        record_llm_tokens(
            activity_meter(),
            model=model,
            agent=agent,
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


def with_spend(exc: BaseException, spent: Usage) -> ApplicationError:
    """`exc` as this attempt's failure, its details ending with what all attempts so far were billed."""
    details = {"usage": spent.model_dump()}
    if isinstance(exc, ApplicationError):
        return ApplicationError(
            exc.message,
            *exc.details,
            details,
            type=exc.type,
            non_retryable=exc.non_retryable,
            next_retry_delay=exc.next_retry_delay,
        )
    return ApplicationError(str(exc) or type(exc).__name__, details, type=type(exc).__name__)
