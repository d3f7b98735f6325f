"""The `invoke_agent` activity (pattern A): one whole agent run, heartbeating each turn."""

from __future__ import annotations

from temporalio import activity

from activities.agent_specs import AgentResolver
from activities.black_box.checkpoint import Checkpoints
from activities.black_box.engine import AgentEngine, BlackBoxTools, EngineRun
from activities.black_box.handoffs import HandoffRoster
from activities.black_box.ledger import AgentLedger
from activities.heartbeat import carried_spend, heartbeating
from activities.progress_publisher import publishing
from activities.routing import route
from activities.tool_executor import ToolExecutor
from config.settings import Settings
from models.blackbox import InvokeAgentRequest, InvokeAgentResult


class BlackBoxActivities:
    """Holds the worker's agent engines, keyed by provider (`openai`, `anthropic`), and its tool executor."""

    def __init__(
        self,
        settings: Settings,
        agents: AgentResolver,
        engines: dict[str, AgentEngine],
        executor: ToolExecutor,
        checkpoints: Checkpoints | None = None,
    ) -> None:
        self._checkpoints = checkpoints
        """Turn-level resume (None: a retry starts the agent from its first turn)."""
        self._settings = settings
        self._agents = agents
        self._engines = engines
        self._executor = executor

    @activity.defn(name="invoke_agent")
    async def invoke_agent(self, request: InvokeAgentRequest) -> InvokeAgentResult:
        """Run the agent to its final output; a retry re-runs it whole, so its tools must be read-only or idempotent."""
        model, engine = route(
            model=request.model,
            default_model=self._settings.default_model,
            by_provider=self._engines,
            kind="agent engine",
        )
        agent, definitions = await self._agents.resolve(request.agent, request.spec)
        info = activity.info()
        max_turns = min(request.max_turns, agent.max_turns)
        # Earlier attempts' spend comes first: the allowance is the branch's, whichever attempt spends it.
        ledger = AgentLedger(agent=agent.name, model=model, usage=carried_spend(), allowance=request.allowance)
        activity.logger.info(
            "running agent %s on %s (attempt %d, at most %d turns)", agent.name, model, info.attempt, max_turns
        )
        ledger.heartbeat()
        tools = BlackBoxTools(self._executor, agent, definitions, f"{info.workflow_id}:{request.label}", ledger)
        roster = HandoffRoster(self._agents, request.handoff_specs) if request.handoff_specs else None
        try:
            async with publishing(request.progress, agent=agent.name):
                run = EngineRun(agent, request, model, max_turns, ledger, tools, self._checkpoints, roster)
                return await heartbeating(engine.run(run), ledger.heartbeat)
        except Exception as exc:  # not cancellation (a BaseException): the run closes Canceled with what it saw
            raise ledger.failure(exc) from exc
