"""The `run_tool` activity: one validated tool call."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.context import ConversationStore
from config.settings import Settings
from models.conversation import ToolOutcome
from models.tooling import ToolInvocation
from tools.registry import Registry, ToolContext, ToolInputError


class ToolActivities:
    """Runs tool handlers with the worker's settings."""

    def __init__(self, settings: Settings, registry: Registry, context: ConversationStore | None = None) -> None:
        self._settings = settings
        self._registry = registry
        self._context = context or ConversationStore(settings.blob_store(), settings.tool_output_max_chars)

    @activity.defn(name="run_tool")
    async def run_tool(self, invocation: ToolInvocation) -> ToolOutcome:
        """Run the handler; misuse goes back to the model, other failures are retried by Temporal."""
        call = invocation.call
        tool = self._registry.tools.get(call.name)
        if tool is None:
            raise ApplicationError(f"unknown tool {call.name!r}", type="UnknownTool", non_retryable=True)
        args = tool.args.model_validate(call.arguments)
        ctx = ToolContext(idempotency_key=invocation.idempotency_key, notes_db=self._settings.notes_db)
        try:
            content = await tool.handler(args, ctx)
        except ToolInputError as exc:
            return ToolOutcome(tool_call_id=call.id, name=call.name, content=f"Error: {exc}", is_error=True)
        except Exception as exc:
            raise ApplicationError(f"tool {call.name} failed: {type(exc).__name__}: {exc}", type="ToolFailed") from exc
        if not invocation.offload:
            return ToolOutcome(tool_call_id=call.id, name=call.name, content=content)
        kept, ref = await self._context.offload_output(content)
        return ToolOutcome(tool_call_id=call.id, name=call.name, content=kept, content_ref=ref)
