"""Tenants: each token belongs to one, and sees only its own tenant's runs; another's answer 404, as if absent.

A run started through the gateway records its tenant in its memo (`tenant`) and in the `TenantId` search
attribute. A run started with the CLI or the SDK records none and belongs to the `default` tenant, the
tenant of tokens that name none: a single-tenant deployment sees every run as before, and a caller of the SDK
who serves several tenants sets `TenantId` at start itself. An `admin` token sees every tenant's runs.
"""

from __future__ import annotations

from typing import Any

from temporalio.client import Client, WorkflowExecutionDescription, WorkflowHandle

from gateway.http import ApiError
from gateway.temporal import describe
from gateway.tokens import DEFAULT_TENANT, Caller, TokenBook
from models.search_attributes import TENANT_ID
from models.spend_limits import SpendLimits, customer_owner

TENANT_MEMO = "tenant"


def run_tenant(description: WorkflowExecutionDescription) -> str:
    """The tenant a run belongs to: its `TenantId`, else `default`."""
    return description.typed_search_attributes.get(TENANT_ID) or DEFAULT_TENANT


async def owned_run(
    client: Client, who: Caller, workflow_id: str
) -> tuple[WorkflowHandle[Any, Any], WorkflowExecutionDescription]:
    """The run's handle and description when `who` may see it; 404 alike for another tenant's run and for none."""
    handle, description = await describe(client, workflow_id)
    if not who.sees(run_tenant(description)):
        raise ApiError(404, f"no run with workflow id {workflow_id!r}")
    return handle, description


def check_customer(who: Caller, customer_id: object, limits: SpendLimits | None, book: TokenBook) -> None:
    """403 when a run `who` starts would spend another tenant's customer: the one SPEND_LIMITS gives a tenant
    (`tenant = "..."` in its table), else a customer named like another tenant (whose `GET /v1/usage` shows it).

    A run's customer picks the spend limits it draws on and its fairness key: naming another tenant's customer
    would spend that tenant's budget and take its share of dispatch. Customers nobody owns stay open to all.
    """
    if not isinstance(customer_id, str) or not customer_id or who.may("admin"):
        return
    owner = customer_owner(limits, customer_id, book.tenants)
    if owner is not None and owner != who.tenant:
        raise ApiError(
            403, f"input.customer_id: customer {customer_id!r} belongs to another tenant", "input.customer_id"
        )


def visible_runs(who: Caller) -> str:
    """The visibility query clause of the runs `who` sees ('' for an admin: every run)."""
    if who.may("admin"):
        return ""
    if who.tenant == DEFAULT_TENANT:  # runs started without the gateway record no tenant
        return f'({TENANT_ID.name} = "{DEFAULT_TENANT}" OR {TENANT_ID.name} IS NULL)'
    return f'{TENANT_ID.name} = "{who.tenant}"'
