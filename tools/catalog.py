"""The built-in tools and agents every worker registers."""

from __future__ import annotations

from tools.calculator import calculator
from tools.finance import analysis_agent, budget_agent, calculate_budget, project_savings
from tools.notes import search_notes, write_note
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
    return registry


REGISTRY = build_registry()
"""The process-wide registry; static, so workflows can read its metadata deterministically."""
