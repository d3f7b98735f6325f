"""`GET /v1/usage` and fair dispatch through the gateway, over real HTTP and a real dev server."""

from __future__ import annotations

import hashlib

import pytest
from pydantic import ValidationError

from activities.spend_lease import release_all
from devstack.dev_server import free_port
from devstack.fake_anthropic import Reply
from gateway.http import ApiError
from gateway.tenants import check_customer
from gateway.tokens import Caller, TokenBook
from models.spend_limits import SpendLimits, customers_of
from tests.gateway_support import gateway_client, running_gateway, with_gateway
from tests.spend_support import customer, limited_worker, limits_toml, tokens_of, with_limits

PEOPLE = (("acme-bot", ["starter"], "acme"), ("globex-bot", ["starter"], "globex"), ("ops", ["admin"], "default"))


async def test_usage_shows_the_callers_tenant_only_and_runs_carry_the_customers_fairness(
    client, settings, fake_llm, tmp_path
):
    who = customer()
    people = {"ten": ("ten-token", who), "other": ("other-token", "elsewhere")}
    tokens = tmp_path / "tokens.toml"
    tokens.write_text(
        "".join(
            f'[tokens.{name}]\nsha256 = "{hashlib.sha256(token.encode()).hexdigest()}"\n'
            f'roles = ["starter"]\ntenant = "{tenant}"\n'
            for name, (token, tenant) in people.items()
        )
    )
    limited = with_limits(settings, limits_toml(who, tokens=1_000_000) + "fairness_weight = 3.0\n", tmp_path)
    limited = with_gateway(limited, free_port())
    fake_llm.push(Reply(text="hello"))

    def auth(name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {people[name][0]}"}

    async with (
        limited_worker(client, limited),
        running_gateway(client, limited, tokens) as url,
        gateway_client(url) as http,
    ):
        body = {"workflow": "AgentLoopWorkflow", "input": {"prompt": "hi", "customer_id": who}}
        started = await http.post("/v1/runs", json=body, headers=auth("ten"))
        assert started.status_code == 201, started.text
        handle = client.get_workflow_handle(started.json()["workflow_id"])
        result = await handle.result()
        priority = (await handle.describe()).raw_info.priority
        await release_all()  # the worker's last report, and its allowance given back (activities/spend_lease.py)
        mine = (await http.get("/v1/usage", headers=auth("ten"))).json()
        theirs = (await http.get("/v1/usage", headers=auth("other"))).json()
        # Another tenant may not spend this tenant's customer (its budget, its share of dispatch).
        poached = await http.post("/v1/runs", json=body, headers=auth("other"))
        anonymous = await http.get("/v1/usage")
    assert priority.fairness_key == who and priority.fairness_weight == 3.0
    [row] = mine["limits"]
    assert mine["tenant"] == who and row["limit"] == f"customer {who} day" and row["on_limit"] == "fail"
    assert row["spent"]["tokens"] == tokens_of(result) and row["reserved"]["tokens"] == 0
    assert row["remaining"]["tokens"] == 1_000_000 - tokens_of(result)
    assert theirs["limits"] == [] and anonymous.status_code == 401
    assert poached.status_code == 403 and poached.json()["field"] == "input.customer_id", poached.text
    assert poached.json()["detail"] == f"input.customer_id: customer {who!r} belongs to another tenant"


def test_a_customer_the_limits_file_gives_a_tenant_is_that_tenants_alone():
    limits = SpendLimits.model_validate(
        {"limits": {"C123": {"day": {"usd": 5.0}, "tenant": "acme"}, "C9": {"day": {"usd": 1.0}}}}
    )
    book = TokenBook(tuple((n, Caller(identity=n, roles=frozenset(r), tenant=t)) for n, r, t in PEOPLE))
    acme, globex, admin = (caller for _, caller in book.entries)
    check_customer(acme, "C123", limits, book)  # its own
    check_customer(admin, "C123", limits, book)  # an admin may start any customer's runs
    for unowned in ("C9", "someone-new", None, ""):  # customers nobody owns stay open to all
        check_customer(globex, unowned, limits, book)
    for owned in ("C123", "acme"):  # declared in the file; named like a tenant
        with pytest.raises(ApiError) as refused:
            check_customer(globex, owned, limits, book)
        assert refused.value.status == 403 and refused.value.field == "input.customer_id"
    assert customers_of(limits, "acme") == {"acme", "C123"} and customers_of(limits, "globex") == {"globex"}
    # One rule for both: a customer named like a tenant but given to another in the file is that other's alone.
    given = SpendLimits.model_validate({"limits": {"globex": {"day": {"usd": 1.0}, "tenant": "acme"}}})
    assert customers_of(given, "globex") == set() and customers_of(given, "acme") == {"acme", "globex"}
    check_customer(acme, "globex", given, book)
    with pytest.raises(ApiError):
        check_customer(globex, "globex", given, book)
    with pytest.raises(ValidationError, match="tenant"):
        SpendLimits.model_validate({"limits": {"C1": {"day": {"usd": 1.0}, "tenant": "a b"}}})
