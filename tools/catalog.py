"""The built-in tools and agents every worker registers."""

from __future__ import annotations

from tools.calculator import calculator
from tools.finance import analysis_agent, budget_agent, calculate_budget, project_savings
from tools.notes import search_notes, write_note
from tools.pinning import PLANNER, describe_agent
from tools.registry import AgentProfile, Registry


def build_registry() -> Registry:
    """A registry holding the demo tools and agents."""
    registry = Registry()
    for tool in (calculator, search_notes, write_note, calculate_budget, project_savings):
        registry.add_tool(tool)
    registry.add_agent(
        AgentProfile(
            name="assistant",
            instructions=(
                "You are a careful assistant. Use the calculator for every calculation instead of "
                "doing arithmetic yourself. Save notes only when the user asks you to. "
                "Answer briefly once the work is done."
            ),
            tools=("calculator", "search_notes", "write_note"),
        )
    )
    registry.add_agent(
        AgentProfile(
            name="researcher",
            instructions="You look things up and calculate; you never change stored data.",
            tools=("calculator", "search_notes", "write_note"),
            read_only=True,
        )
    )
    registry.add_agent(budget_agent)
    registry.add_agent(analysis_agent)
    registry.add_agent(planner_agent(registry))
    return registry


def planner_agent(registry: Registry) -> AgentProfile:
    """The planner, told which specialists (agents with a structured output) it may consult."""
    specialists = "\n".join(
        f"- {a.name}: {describe_agent(a)}" for a in registry.agents.values() if a.output_schema is not None
    )
    return AgentProfile(
        name=PLANNER,
        instructions=(
            "You plan how to answer the user's request. First decide which specialists to consult and what to ask "
            "each (only those that help; they run in parallel and cannot see each other's answers). Then describe "
            "what the executing assistant must do with their answers; it has a calculator, can search notes and "
            "can save a note (a person approves that).\n\nSpecialists:\n" + specialists + "\n\n"
            "Answer with JSON only, no prose around it, shaped like: "
            '{"summary": "one sentence", "consultations": [{"agent": "budget", "prompt": "..."}], '
            '"execution": "instructions for the executing assistant"}. '
            "If the user or a reviewer gives feedback on an earlier plan, revise the plan to address it."
        ),
        tools=(),
        read_only=True,
    )


REGISTRY = build_registry()
"""The process-wide registry; static, so workflows can read its metadata deterministically."""
