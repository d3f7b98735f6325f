"""Demo specialists' tools: `calculate_budget` (50/30/20 split) and `project_savings` (compound growth).

Both are pure reads, so they are safe inside a black-box agent, which re-runs whole on a retry.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from tools.registry import AgentProfile, CallInfo, Tool

if TYPE_CHECKING:
    from tools.deps import ToolDeps

NEEDS, WANTS, SAVINGS = 0.50, 0.30, 0.20


class BudgetArgs(BaseModel):
    """Arguments of `calculate_budget`."""

    model_config = ConfigDict(extra="forbid")
    monthly_income: float = Field(gt=0, le=1e9, description="Net monthly income")


class BudgetPlan(BaseModel):
    """The `budget` specialist's structured answer."""

    monthly_income: float
    needs: float
    wants: float
    savings: float
    advice: str


class SavingsArgs(BaseModel):
    """Arguments of `project_savings`."""

    model_config = ConfigDict(extra="forbid")
    monthly_amount: float = Field(gt=0, le=1e9, description="Amount saved each month")
    years: int = Field(ge=1, le=100)
    annual_rate: float = Field(ge=0, le=1, description="Yearly return as a fraction, e.g. 0.05 for 5%")


class SavingsProjection(BaseModel):
    """The `analysis` specialist's structured answer."""

    monthly_amount: float
    years: int
    annual_rate: float
    projected_value: float
    summary: str


def split_budget(income: float) -> dict[str, float]:
    """50% needs, 30% wants, 20% savings, in cents."""
    return {
        "monthly_income": income,
        "needs": round(income * NEEDS, 2),
        "wants": round(income * WANTS, 2),
        "savings": round(income * SAVINGS, 2),
    }


def future_value(monthly: float, years: int, annual_rate: float) -> float:
    """Value of `monthly` deposited at each month's end, compounded monthly."""
    rate, months = annual_rate / 12, years * 12
    if rate == 0:
        return round(monthly * months, 2)
    return round(monthly * ((1 + rate) ** months - 1) / rate, 2)


async def calculate_budget_handler(args: BudgetArgs, deps: ToolDeps, call: CallInfo) -> str:
    """Handler: the split as JSON."""
    return json.dumps(split_budget(args.monthly_income))


async def project_savings_handler(args: SavingsArgs, deps: ToolDeps, call: CallInfo) -> str:
    """Handler: the projection as JSON."""
    value = future_value(args.monthly_amount, args.years, args.annual_rate)
    return json.dumps(
        {
            "monthly_amount": args.monthly_amount,
            "years": args.years,
            "annual_rate": args.annual_rate,
            "projected_value": value,
        }
    )


calculate_budget = Tool(
    name="calculate_budget",
    description="Split a monthly income into needs (50%), wants (30%) and savings (20%).",
    args=BudgetArgs,
    handler=calculate_budget_handler,
    effect="read",
)

project_savings = Tool(
    name="project_savings",
    description="Project the value of saving a monthly amount for some years at an annual rate, compounded monthly.",
    args=SavingsArgs,
    handler=project_savings_handler,
    effect="read",
)

budget_agent = AgentProfile(
    name="budget",
    instructions=(
        "You are a budgeting specialist. Call calculate_budget with the user's monthly income, then answer "
        "with JSON only, matching the BudgetPlan schema, adding one sentence of advice."
    ),
    tools=("calculate_budget",),
    read_only=True,
    output=BudgetPlan,
)

analysis_agent = AgentProfile(
    name="analysis",
    instructions=(
        "You are a savings analyst. Call project_savings with the monthly amount, years and annual rate, then "
        "answer with JSON only, matching the SavingsProjection schema, with a one-sentence summary."
    ),
    tools=("project_savings",),
    read_only=True,
    output=SavingsProjection,
)
