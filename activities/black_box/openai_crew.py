"""The SDK agents one Agents SDK black box can run as: its own and its handoff targets', wired with registry tools
(run through the worker's `ToolExecutor`, as every loop's are), output types and native handoffs."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import openai
from agents import Agent, FunctionTool, ToolErrorFormatterArgs

from activities.black_box.engine import BlackBoxTools, EngineRun
from activities.black_box.openai_breakers import AgentsSdkBreakers
from activities.black_box.openai_handoffs import missing_tool_message, native_handoff
from activities.black_box.openai_journal import Journal
from activities.black_box.openai_model import FittedResponsesModel
from activities.black_box.openai_output import Corrections, JsonSchemaOutput
from activities.spend_guard import SpendGuard
from models.conversation import ToolCall
from tools.handoffs import target_of
from tools.registry import AgentProfile, Tool


@dataclass
class Crew:
    """The SDK agents one black box can run as, by name."""

    profiles: dict[str, AgentProfile]
    models: dict[str, str] = field(default_factory=dict)
    agents: dict[str, Agent[Any]] = field(default_factory=dict)
    """Those on OpenAI: a handoff to an agent on another provider is refused (tools/handoffs.py)."""
    tools: dict[str, BlackBoxTools] = field(default_factory=dict)
    outputs: dict[str, JsonSchemaOutput] = field(default_factory=dict)
    formatter: Any = None
    """`RunConfig.tool_error_formatter`: what the model reads for a tool or handoff the speaker lacks."""


Seats = dict[str, tuple[AgentProfile, list[Tool]]]
"""Every agent a black box can run as, by name: its pinned profile and the tools it is shown."""


async def seats_of(run: EngineRun) -> Seats:
    """The agent `run` names and every agent it can hand off to."""
    seats: Seats = {run.agent.name: (run.agent, run.tools.definitions)}
    for name, other in (await run.roster.everyone() if run.roster is not None else {}).items():
        seats.setdefault(name, (other.profile, other.definitions))
    return seats


def build_crew(
    run: EngineRun,
    seats: Seats,
    client: openai.AsyncOpenAI,
    breakers: AgentsSdkBreakers,
    journal: Journal,
    corrections: Corrections,
    guard: SpendGuard | None = None,
) -> Crew:
    """The SDK agent of every seat on OpenAI, wired with tools, output types and native handoffs."""
    crew = Crew(profiles={name: p for name, (p, _) in seats.items()})
    for name, (profile, definitions) in seats.items():
        crew.models[name] = profile.model or run.model
        if name != run.agent.name and not crew.models[name].startswith("openai:"):
            continue
        bound = dataclasses.replace(run.tools, agent=profile, definitions=definitions)
        crew.tools[name] = bound
        if profile.output_schema is not None:
            crew.outputs[name] = JsonSchemaOutput(name, profile.output_schema, corrections)
        model = FittedResponsesModel(
            model=crew.models[name],
            openai_client=client,
            ledger=run.ledger,
            max_output=run.request.max_output_tokens,
            guard=guard,
        )
        crew.agents[name] = Agent(
            name=name,
            instructions=profile.instructions,
            tools=[function_tool(t, bound, breakers) for t in definitions],
            model=model,
            output_type=crew.outputs.get(name),
        )
    for name, sdk_agent in crew.agents.items():
        source = crew.profiles[name]
        sdk_agent.handoffs = [
            native_handoff(
                source,
                crew.profiles[t],
                crew.agents[t],
                crew.models[t],
                run.ledger,
                run.request.prompt,
                journal.replace,
                corrections,
            )
            for t in source.handoffs
            if t in crew.agents
        ]
    crew.formatter = _formatter(crew, run, breakers, journal)
    return crew


def function_tool(tool: Tool, tools: BlackBoxTools, breakers: AgentsSdkBreakers) -> FunctionTool:
    """A registry tool for the SDK, run through the worker's `ToolExecutor`, guarded before and after each call.

    Its arguments arrive as JSON text: parsed the one way (`ToolCall.from_json`), so unreadable ones are refused by
    the executor's checks with the words every loop uses.
    """

    async def invoke(ctx: Any, arguments: str) -> str:
        call = ToolCall.from_json(getattr(ctx, "tool_call_id", "call"), tool.name, arguments)
        if (unrun := breakers.capped.get(call.id)) is not None:  # beyond the reply's limit (tools/next_step.py)
            return unrun
        outcome = await tools.run(call)
        breakers.ran(call.id, outcome.is_error)
        return outcome.content

    # Not strict: the registry's pydantic models validate the arguments, with errors the model can act on.
    return FunctionTool(
        name=tool.name,
        description=tool.description,
        params_json_schema=tool.input_schema(),
        on_invoke_tool=invoke,
        strict_json_schema=False,
        tool_output_guardrails=[breakers.output_guardrail],
    )


def _formatter(crew: Crew, run: EngineRun, breakers: AgentsSdkBreakers, journal: Journal) -> Any:
    """The SDK's `tool_error_formatter` for a call to a tool the speaker lacks: a `transfer_to_<agent>` it was not
    offered gets the handoff's refusal; any other name the `ToolExecutor`'s error result, counted by the breakers."""
    refused_handoff = missing_tool_message(crew.profiles, crew.models, run.ledger, journal.output)

    async def message(args: ToolErrorFormatterArgs[Any]) -> str | None:
        if args.kind != "tool_not_found":
            return None  # the SDK's own message
        if target_of(args.tool_name) is not None:
            text: str = await refused_handoff(args)
            return text
        speaker = run.ledger.speaker
        outcome = await crew.tools[speaker].run(ToolCall(id=args.call_id, name=args.tool_name))
        breakers.refused()
        return outcome.content

    return message
