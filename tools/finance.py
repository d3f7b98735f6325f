"""Demo specialists' tools: `calculate_budget` (50/30/20 split) and `project_savings` (compound growth).

Both are pure reads, so they are safe inside a black-box agent, which re-runs whole on a retry.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from tools.decorator import tool
from tools.registry import AgentProfile

NEEDS, WANTS, SAVINGS = 0.50, 0.30, 0.20


class BudgetPlan(BaseModel):
    """The `budget` specialist's structured answer."""

    monthly_income: float
    needs: float
    wants: float
    savings: float
    advice: str


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


@tool(effect="read", timeout_seconds=10)  # fast and in-process: runs as a local activity (workflows/tool_plan.py)
def calculate_budget(
    monthly_income: Annotated[float, Field(gt=0, le=1e9, description="Net monthly income")],
) -> dict[str, float]:
    """Split a monthly income into needs (50%), wants (30%) and savings (20%)."""
    return split_budget(monthly_income)


@tool(effect="read", timeout_seconds=10)  # fast and in-process: runs as a local activity (workflows/tool_plan.py)
def project_savings(
    monthly_amount: Annotated[float, Field(gt=0, le=1e9, description="Amount saved each month")],
    years: Annotated[int, Field(ge=1, le=100)],
    annual_rate: Annotated[float, Field(ge=0, le=1, description="Yearly return as a fraction, e.g. 0.05 for 5%")],
) -> dict[str, float | int]:
    """Project the value of saving a monthly amount for some years at an annual rate, compounded monthly."""
    return {
        "monthly_amount": monthly_amount,
        "years": years,
        "annual_rate": annual_rate,
        "projected_value": future_value(monthly_amount, years, annual_rate),
    }


budget_agent = AgentProfile(
    name="budget",
    instructions=(
        "You are a budgeting specialist. Call calculate_budget with the user's monthly income, then answer "
        "with JSON only, matching the BudgetPlan schema, adding one sentence of advice."
    ),
    tools=("calculate_budget",),
    read_only=True,
    output_schema=BudgetPlan.model_json_schema(),
)

analysis_agent = AgentProfile(
    name="analysis",
    instructions=(
        "You are a savings analyst. Call project_savings with the monthly amount, years and annual rate, then "
        "answer with JSON only, matching the SavingsProjection schema, with a one-sentence summary."
    ),
    tools=("project_savings",),
    read_only=True,
    output_schema=SavingsProjection.model_json_schema(),
)
