"""The `run_tool` activity: one tool call the workflow has checked (and had approved), run by the `ToolExecutor`."""

from __future__ import annotations

from temporalio import activity

from activities.conversation_store import ConversationStore
from activities.heartbeat import heartbeating
from activities.tool_executor import ToolExecutor
from models.conversation import ToolOutcome
from models.tooling import ToolInvocation


class ToolActivities:
    """Runs tool calls for pattern B on the worker's executor; large outputs go to the conversation store."""

    def __init__(self, executor: ToolExecutor, conversations: ConversationStore) -> None:
        self._executor = executor
        self._conversations = conversations

    @activity.defn(name="run_tool")
    async def run_tool(self, invocation: ToolInvocation) -> ToolOutcome:
        """Run the handler; misuse goes back to the model, other failures are retried by Temporal.

        It heartbeats meanwhile, so a dead worker is noticed within the heartbeat timeout and the run's
        cancellation reaches the handler (its task is cancelled) instead of being waited out.
        """
        running = self._executor.run(
            invocation.call,
            idempotency_key=invocation.idempotency_key,
            on_failure="retry",
            agent_name=invocation.agent,
        )
        beats = activity.in_activity() and not activity.info().is_local  # a local one has no heartbeat to send
        outcome = await (heartbeating(running) if beats else running)
        if not invocation.offload or outcome.is_error:
            return outcome
        kept, ref = await self._conversations.offload_output(outcome.content)
        return outcome.model_copy(update={"content": kept, "content_ref": ref})
