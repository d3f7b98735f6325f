"""`GET /v1/usage`: the spend limits of the caller's tenant (every tenant's for an admin).

A tenant's limits are those of the customers it owns: the customer id equal to its name, and those SPEND_LIMITS
gives it (`tenant = "..."`); only it may start runs that spend them (gateway/tenants.py `check_customer`). An admin
sees every ledger, `*` included. Rows are spend/usage.py's.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from config.settings import Settings
from gateway.http import caller
from models.spend_limits import customers_of
from spend.usage import usage


async def read_usage(request: Request) -> Response:
    """Each open ledger of the caller's tenant: spend, reserved, cap, remaining, when its window resets."""
    who = caller(request)
    settings: Settings = request.app.state.settings
    scopes = None if who.may("admin") else customers_of(settings.spend_limits, who.tenant)
    rows = await usage(request.app.state.client, settings.spend_limits, scopes)
    return JSONResponse({"tenant": who.tenant, "limits_configured": settings.spend_limits is not None, "limits": rows})
