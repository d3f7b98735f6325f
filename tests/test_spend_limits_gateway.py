"""`GET /v1/usage` and fair dispatch through the gateway, over real HTTP and a real dev server."""

from __future__ import annotations

import hashlib

from devstack.dev_server import free_port
from devstack.fake_anthropic import Reply
from tests.gateway_support import gateway_client, running_gateway, with_gateway
from tests.spend_support import customer, limited_worker, limits_toml, tokens_of, with_limits


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
        mine = (await http.get("/v1/usage", headers=auth("ten"))).json()
        theirs = (await http.get("/v1/usage", headers=auth("other"))).json()
        anonymous = await http.get("/v1/usage")
    assert priority.fairness_key == who and priority.fairness_weight == 3.0
    [row] = mine["limits"]
    assert mine["tenant"] == who and row["limit"] == f"customer {who} day" and row["on_limit"] == "fail"
    assert row["spent"]["tokens"] == tokens_of(result) and row["reserved"]["tokens"] == 0
    assert row["remaining"]["tokens"] == 1_000_000 - tokens_of(result)
    assert theirs["limits"] == [] and anonymous.status_code == 401
