"""The example's tools, declared as any user's: the type hints are the schema, the docstring the description."""

from __future__ import annotations

ORDERS = {"A1": 42.5, "B2": 10.0}
REFUNDED: list[str] = []

from tools import tool  # noqa: E402  (the product's decorator; after the data so the example reads top-down)


@tool(effect="read")
async def order_total(order_id: str) -> str:
    """Total of one order, in euros."""
    total = ORDERS.get(order_id)
    return f"no order {order_id}" if total is None else f"{total:.2f} EUR"


@tool(effect="write", requires_approval=True)
async def refund_order(order_id: str, amount: float) -> str:
    """Refund an order (a person approves each refund)."""
    REFUNDED.append(order_id)
    return f"Refunded {amount:.2f} EUR on order {order_id}."
