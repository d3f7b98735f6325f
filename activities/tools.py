"""The `run_tool` activity: one validated tool call."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.context import ConversationStore
from config.settings import Settings
from models.conversation import ToolOutcome
from models.errors import ToolInputError
from models.tooling import ToolInvocation
from payloads.blobs import blob_store
from telemetry.metrics import activity_meter, record_tool_call
from telemetry.observe import tool_call
from tools.registry import Registry, ToolContext


class ToolActivities:
    """Runs tool handlers with the worker's settings."""

    def __init__(self, settings: Settings, registry: Registry, context: ConversationStore | None = None) -> None:
        self._settings = settings
        self._registry = registry
        self._context = context or ConversationStore(blob_store(settings.blobs), settings.tool_output_max_chars)

    @activity.defn(name="run_tool")
    async def run_tool(self, invocation: ToolInvocation) -> ToolOutcome:
        """Run the handler; misuse goes back to the model, other failures are retried by Temporal."""
        call = invocation.call
        tool = self._registry.tools.get(call.name)
        if tool is None:
            raise ApplicationError(f"unknown tool {call.name!r}", type="UnknownTool", non_retryable=True)
        args = tool.args.model_validate(call.arguments)
        ctx = ToolContext(idempotency_key=invocation.idempotency_key, notes_db=self._settings.notes_db)
        with tool_call(
            name=call.name, arguments=call.arguments, idempotency_key=invocation.idempotency_key
        ) as observed:
            try:
                content = await tool.handler(args, ctx)
            except ToolInputError as exc:
                outcome = ToolOutcome(tool_call_id=call.id, name=call.name, content=f"Error: {exc}", is_error=True)
            except Exception as exc:
                record_tool_call(activity_meter(), tool=call.name, ok=False)
                raise ApplicationError(
                    f"tool {call.name} failed: {type(exc).__name__}: {exc}", type="ToolFailed"
                ) from exc
            else:
                outcome = ToolOutcome(tool_call_id=call.id, name=call.name, content=content)
            observed.finish(outcome.content, outcome.is_error)
        record_tool_call(activity_meter(), tool=call.name, ok=not outcome.is_error)
        if not invocation.offload or outcome.is_error:
            return outcome
        kept, ref = await self._context.offload_output(outcome.content)
        return outcome.model_copy(update={"content": kept, "content_ref": ref})
