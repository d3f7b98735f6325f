"""What both black-box engines share: progress and heartbeats, and running a registry tool in-process."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, Protocol

from temporalio import activity

from activities.pricing import cost_usd
from models.blackbox import InvokeAgentRequest, InvokeAgentResult
from models.errors import ToolInputError
from models.run import Usage
from telemetry.metrics import activity_meter, record_guardrail_rejection, record_llm_tokens, record_tool_call
from telemetry.observe import tool_call
from tools.registry import AgentProfile, Registry, Tool, ToolContext, check_tool_call


@dataclass
class AgentProgress:
    """Turns and spending of one agent run so far; sent as heartbeat details, so the UI shows it."""

    agent: str
    model: str
    turns: int = 0
    usage: Usage = field(default_factory=Usage)
    last: str = "started"

    def record_llm(self, input_tokens: int, output_tokens: int, what: str) -> None:
        """Count one inference (one turn) and heartbeat at once."""
        cost = cost_usd(self.model, input_tokens, output_tokens)
        record_llm_tokens(
            activity_meter(), model=self.model, agent=self.agent, input_tokens=input_tokens, output_tokens=output_tokens
        )
        self.usage = self.usage.add(
            Usage(llm_calls=1, input_tokens=input_tokens, output_tokens=output_tokens, cost_usd=cost)
        )
        self.turns += 1
        self.last = what
        self.heartbeat()

    def record_tool(self, name: str, is_error: bool) -> None:
        """Count one tool call."""
        self.usage = self.usage.add(Usage(tool_calls=1))
        self.last = f"tool {name} {'failed' if is_error else 'ok'}"

    def snapshot(self) -> dict[str, Any]:
        """Heartbeat details: small and free of prompts and outputs."""
        return {"agent": self.agent, "turn": self.turns, "last": self.last, "usage": self.usage.model_dump()}

    def heartbeat(self) -> None:
        """Report progress to Temporal (only inside an activity)."""
        if activity.in_activity():
            activity.heartbeat(self.snapshot())

    def result(self, output: Any, stopped: str | None = None) -> InvokeAgentResult:
        """The activity's result."""
        return InvokeAgentResult(
            agent=self.agent, model=self.model, output=output, usage=self.usage, turns=self.turns, stopped=stopped
        )


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
