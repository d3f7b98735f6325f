"""Running one registry tool call: the one executor behind `run_tool` (pattern B) and the black-box engines (A).

It validates the call, runs the handler with the worker's `ToolDeps` inside a tool span, counts it,
and turns failures into what its caller needs, chosen by `on_failure`:

- `"retry"` (`run_tool`): the workflow has already checked the call against the agent and asked for any
  approval. An unknown tool is a non-retryable `UnknownTool`; a handler's exception is a retryable
  `ToolFailed`, so Temporal retries it and every attempt is in the history.
- `"report"` (inside a black box): the call is checked here against the agent; a tool that needs approval
  is refused (nobody can approve inside a black box, and a retry re-runs the whole agent); every failure,
  timeout included, is an error result the model reads.

In both, a `ToolInputError` (the model used the tool wrongly) is an error result, never retried.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from temporalio import activity
from temporalio.exceptions import ApplicationError

from models.conversation import ToolCall, ToolOutcome
from models.errors import ToolInputError
from telemetry.metrics import activity_meter, record_guardrail_rejection, record_tool_call
from telemetry.observe import tool_call
from tools.deps import ToolDeps
from tools.registry import AgentProfile, CallInfo, Registry, Tool, ToolArgumentsInvalid, check_call

OnFailure = Literal["retry", "report"]
"""`retry`: raise so Temporal retries (`run_tool`); `report`: give the model an error result (black boxes)."""


class ToolExecutor:
    """Validates and runs tool calls with the worker's tool dependencies; one per worker, shared by both patterns."""

    def __init__(self, registry: Registry, deps: ToolDeps) -> None:
        self._registry = registry
        self._deps = deps

    @property
    def registry(self) -> Registry:
        """The worker's tools: what black-box calls are checked against."""
        return self._registry

    async def run(
        self,
        call: ToolCall,
        *,
        idempotency_key: str,
        on_failure: OnFailure,
        agent: AgentProfile | None = None,
        agent_name: str = "",
    ) -> ToolOutcome:
        """The outcome the model is shown; `agent` (required for `report`) is whose policy the call is checked against.

        `agent_name` names the calling agent to the tool (`ToolContext.agent`) when no `agent` is given.
        """
        with tool_call(name=call.name, arguments=call.arguments, idempotency_key=idempotency_key) as observed:
            admitted = self._admit(call, agent) if on_failure == "report" else self._resolve(call)
            if isinstance(admitted, ToolOutcome):
                outcome = admitted
            else:
                tool, args = admitted
                outcome = await self._execute(
                    tool, args, call, CallInfo(idempotency_key, agent=agent.name if agent else agent_name), on_failure
                )
                record_tool_call(activity_meter(), tool=call.name, ok=not outcome.is_error)
            observed.finish(outcome.content, outcome.is_error)
        return outcome

    def _resolve(self, call: ToolCall) -> tuple[Tool, Any] | ToolOutcome:
        """`retry` mode: the workflow checked the call, so only the tool and its arguments are needed."""
        tool = self._registry.tools.get(call.name)
        if tool is None or tool.handler is None:
            worker = activity.client().identity if activity.in_activity() else "this process"
            raise ApplicationError(
                f"tool {call.name!r} is not available on worker {worker!r} (its TOOL_MODULES, AGENTS_FILE "
                "or MCP servers do not declare it)",
                type="UnknownTool",
                non_retryable=True,
            )
        try:
            return tool, tool.validate(call.arguments)
        except ToolArgumentsInvalid as exc:  # the workflow checked the pinned schema; the handler's model is stricter
            return _error(call, f"Error: invalid arguments for {call.name!r}: {exc}")

    def _admit(self, call: ToolCall, agent: AgentProfile | None) -> tuple[Tool, Any] | ToolOutcome:
        """`report` mode: the guardrails `run_tool`'s workflow applies, applied here; a refusal is an error result."""
        if agent is None:
            raise ValueError("on_failure='report' checks the call against an agent: pass agent=")
        if call.name in agent.tools and call.name not in self._registry.tools:
            record_guardrail_rejection(activity_meter(), reason="unknown_tool")
            worker = activity.client().identity if activity.in_activity() else "this process"
            return _error(call, f"Error: tool {call.name!r} is not available on worker {worker!r}.")
        check = check_call(self._registry, agent, call)
        if check.tool is None or check.args is None:
            record_guardrail_rejection(activity_meter(), reason=check.reason or "refused")
            return _error(call, f"Error: {check.error}")
        if check.tool.requires_approval:
            # Nobody can approve inside a black box, and a retry re-runs the whole agent.
            record_guardrail_rejection(activity_meter(), reason="needs_approval")
            return _error(
                call, f"Error: tool {call.name!r} needs a person's approval and cannot run inside a black-box agent."
            )
        return check.tool, check.args

    async def _execute(
        self, tool: Tool, args: Any, call: ToolCall, info: CallInfo, on_failure: OnFailure
    ) -> ToolOutcome:
        assert tool.handler is not None  # _resolve and _admit only return tools that can run
        try:
            if on_failure == "report":
                content = await asyncio.wait_for(tool.handler(args, self._deps, info), tool.timeout.total_seconds())
            else:  # Temporal enforces the tool's timeout (start-to-close) and retries
                content = await tool.handler(args, self._deps, info)
        except ToolInputError as exc:
            return _error(call, f"Error: {exc}")
        except Exception as exc:
            if on_failure == "retry":
                record_tool_call(activity_meter(), tool=call.name, ok=False)
                raise ApplicationError(
                    f"tool {call.name} failed: {type(exc).__name__}: {exc}", type="ToolFailed"
                ) from exc
            if isinstance(exc, TimeoutError):
                return _error(call, f"Error: tool {call.name} timed out after {tool.timeout.total_seconds():g}s")
            return _error(call, f"Error: tool {call.name} failed: {type(exc).__name__}: {exc}")
        return ToolOutcome(tool_call_id=call.id, name=call.name, content=content)


def _error(call: ToolCall, content: str) -> ToolOutcome:
    return ToolOutcome(tool_call_id=call.id, name=call.name, content=content, is_error=True)
