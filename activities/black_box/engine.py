"""The engine protocol of pattern A, and the registry tools an engine runs in-process."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

from activities.black_box.progress import AgentProgress
from models.blackbox import InvokeAgentRequest, InvokeAgentResult
from models.errors import ToolInputError
from telemetry.metrics import activity_meter, record_guardrail_rejection, record_tool_call
from telemetry.observe import tool_call
from tools.registry import AgentProfile, Registry, Tool, ToolContext, check_tool_call


class AgentEngine(Protocol):
    """Runs one whole agent in-process: the OpenAI Agents SDK or the Claude tool loop."""

    async def run(
        self,
        *,
        agent: AgentProfile,
        request: InvokeAgentRequest,
        model: str,
        max_turns: int,
        progress: AgentProgress,
        tools: ToolRunner,
    ) -> InvokeAgentResult:
        """Run until the agent answers or reaches `max_turns`; raise `ApplicationError` on provider failure."""
        ...


class ToolRunner:
    """Runs the agent's registry tools inside the black box, with the same checks as `run_tool`."""

    def __init__(
        self, registry: Registry, agent: AgentProfile, notes_db: str, key_prefix: str, progress: AgentProgress
    ) -> None:
        self._registry = registry
        self._agent = agent
        self._notes_db = notes_db
        self._key_prefix = key_prefix
        self._progress = progress

    async def run(self, name: str, arguments: dict[str, Any], call_id: str) -> tuple[str, bool]:
        """(content, is_error): misuse and failures go back to the model, as in pattern B."""
        key = f"{self._key_prefix}:{call_id}"
        with tool_call(name=name, arguments=arguments, idempotency_key=key) as observed:
            content, is_error = await self._run(name, arguments, key)
            observed.finish(content, is_error)
        self._progress.record_tool(name, is_error)
        return content, is_error

    async def _run(self, name: str, arguments: dict[str, Any], key: str) -> tuple[str, bool]:
        check = check_tool_call(self._registry, self._agent, name, arguments)
        if check.tool is None:
            record_guardrail_rejection(activity_meter(), reason=check.reason or "refused")
            return f"Error: {check.error}", True
        tool = check.tool
        if tool.requires_approval:
            # Nobody can approve inside a black box, and a retry re-runs the whole agent.
            record_guardrail_rejection(activity_meter(), reason="needs_approval")
            return f"Error: tool {name!r} needs a person's approval and cannot run inside a black-box agent.", True
        ctx = ToolContext(idempotency_key=key, notes_db=self._notes_db)
        content, is_error = await self._execute(tool, name, arguments, ctx)
        record_tool_call(activity_meter(), tool=name, ok=not is_error)
        return content, is_error

    async def _execute(self, tool: Tool, name: str, arguments: dict[str, Any], ctx: ToolContext) -> tuple[str, bool]:
        try:
            return await asyncio.wait_for(
                tool.handler(tool.args.model_validate(arguments), ctx), tool.timeout.total_seconds()
            ), False
        except ToolInputError as exc:
            return f"Error: {exc}", True
        except TimeoutError:
            return f"Error: tool {name} timed out after {tool.timeout.total_seconds():g}s", True
        except Exception as exc:
            return f"Error: tool {name} failed: {type(exc).__name__}: {exc}", True
