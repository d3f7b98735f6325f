"""The gateway's run routes over real HTTP (uvicorn on 127.0.0.1) against the dev server and a real worker."""

from __future__ import annotations

import asyncio

import pytest

from devstack.dev_server import free_port
from devstack.fake_anthropic import Reply
from tests.gateway_support import LINK_SECRET, TOKENS, auth, gateway_client, running_gateway, with_gateway, write_tokens
from tests.helpers import eventually

NOTE = {"title": "Answer", "body": "1200"}


@pytest.fixture
async def api(client, worker, tmp_path):
    """An HTTP client for a gateway on this test's task queue (the `worker` fixture polls it)."""
    settings = with_gateway(worker, free_port())
    tokens = write_tokens(tmp_path / "tokens.toml")
    async with running_gateway(client, settings, tokens) as url, gateway_client(url) as http:
        yield http


async def runs_with_id(client, workflow_id: str) -> int:
    return len([w async for w in client.list_workflows(f'WorkflowId="{workflow_id}"')])


def loop_body(prompt: str = "What is 6000 * 0.2?", **input_extra) -> dict:
    return {"workflow": "AgentLoopWorkflow", "input": {"prompt": prompt, **input_extra}}


async def finished(api, workflow_id: str, who: str = "reader") -> dict:
    async def check():
        view = (await api.get(f"/v1/runs/{workflow_id}", headers=auth(who))).json()
        return view if view["temporal_status"] != "RUNNING" else None

    return await eventually(check, 30)


async def test_the_same_idempotency_key_twice_is_one_run_and_its_result(api, client, fake_llm):
    fake_llm.push(Reply(text="6000 * 0.2 = 1200"))
    headers = {**auth("alice"), "Idempotency-Key": "order-42"}
    first = await api.post("/v1/runs", json=loop_body(), headers=headers)
    assert first.status_code == 201, first.text
    again = await api.post("/v1/runs", json=loop_body(), headers=headers)
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    workflow_id = first.json()["workflow_id"]
    assert workflow_id.startswith("gw-")

    view = await finished(api, workflow_id)
    assert view["temporal_status"] == "COMPLETED"
    assert view["result"]["status"] == "completed" and view["result"]["output"] == "6000 * 0.2 = 1200"
    assert view["status"]["state"] == "completed"
    # A retry after the run closed still finds it, and never starts another.
    late = await api.post("/v1/runs", json=loop_body(), headers=headers)
    assert late.status_code == 200 and late.json() == first.json()
    assert await runs_with_id(client, workflow_id) == 1
    fake_llm.assert_script_consumed()


async def test_without_a_key_each_post_starts_a_run(api, fake_llm):
    fake_llm.push(Reply(text="one"), Reply(text="two"))
    a = await api.post("/v1/runs", json=loop_body(), headers=auth("alice"))
    b = await api.post("/v1/runs", json=loop_body(), headers=auth("starter"))
    assert a.status_code == b.status_code == 201
    assert a.json()["workflow_id"] != b.json()["workflow_id"]
    outputs = {(await finished(api, r.json()["workflow_id"]))["result"]["output"] for r in (a, b)}
    assert outputs == {"one", "two"}


async def test_another_body_under_the_same_key_or_id_is_409(api, client, fake_llm):
    fake_llm.push(Reply(text="first"), Reply(text="by id"))
    headers = {**auth("alice"), "Idempotency-Key": "k-1"}
    assert (await api.post("/v1/runs", json=loop_body("first"), headers=headers)).status_code == 201
    conflict = await api.post("/v1/runs", json=loop_body("second"), headers=headers)
    assert conflict.status_code == 409 and "another body" in conflict.json()["detail"]

    # The same key from another identity is another run: keys are per caller.
    other = await api.post("/v1/runs", json=loop_body("first"), headers={**auth("starter"), "Idempotency-Key": "k-1"})
    assert other.status_code == 201
    fake_llm.push(Reply(text="other"))

    body = {**loop_body("by id"), "workflow_id": f"mine-{free_port()}"}
    created = await api.post("/v1/runs", json=body, headers=auth("alice"))
    assert created.status_code == 201 and created.json()["workflow_id"] == body["workflow_id"]
    assert (await api.post("/v1/runs", json=body, headers=auth("alice"))).json() == created.json()
    changed = await api.post("/v1/runs", json={**body, "input": {"prompt": "changed"}}, headers=auth("alice"))
    assert changed.status_code == 409
    assert await runs_with_id(client, body["workflow_id"]) == 1
    for r in (created, other):
        await finished(api, r.json()["workflow_id"])


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (loop_body(budget={"max_steps": 0}), "input.budget.max_steps", "greater than or equal to 1"),
        (loop_body(colour="blue"), "input.colour", "unknown field"),
        ({"workflow": "AgentLoopWorkflow", "input": {}}, "input.prompt", "Field required"),
        ({"workflow": "NoSuchWorkflow", "input": {"prompt": "x"}}, "workflow", "Input should be"),
        (
            {"workflow": "BlackBoxAgentWorkflow", "input": {"prompt": "x", "max_concurrency": 99}},
            "input.max_concurrency",
            "less than",
        ),
        (
            {"workflow": "HybridAgentWorkflow", "input": {"prompt": "x", "max_revisions": "2"}},
            "input.max_revisions",
            "",
        ),
        ({**loop_body(), "extra": 1}, "extra", "unknown field"),
    ],
)
async def test_a_bad_input_is_422_naming_the_field_and_starts_nothing(api, client, body, field, message):
    headers = {**auth("alice"), "Idempotency-Key": f"bad-{field}"}
    response = await api.post("/v1/runs", json=body, headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert field in response.json()["detail"] and message in response.json()["detail"]
    from config.gateway import GatewaySettings
    from gateway.models import StartRun
    from gateway.runs import workflow_id_for
    from gateway.tokens import Caller

    key = GatewaySettings(link_secret=LINK_SECRET).workflow_id_key
    alice = Caller("alice", frozenset({"starter", "approver"}))
    derived = workflow_id_for(key, alice, StartRun.model_construct(workflow_id=None), f"bad-{field}")
    assert await runs_with_id(client, derived) == 0


async def test_malformed_json_is_422(api):
    response = await api.post(
        "/v1/runs", content=b"{not json", headers={**auth("alice"), "Content-Type": "application/json"}
    )
    assert response.status_code == 422 and response.json()["field"] == "body"


async def test_tokens_decide_who_may_call(api):
    assert (await api.post("/v1/runs", json=loop_body())).status_code == 401
    unknown = await api.post("/v1/runs", json=loop_body(), headers={"Authorization": "Bearer not-a-token"})
    assert unknown.status_code == 401 and unknown.headers["www-authenticate"] == "Bearer"
    assert (await api.get("/v1/approvals", headers={"Authorization": "Basic eDp5"})).status_code == 401
    # A digest is not a token: the file's sha256 value itself is refused.
    import hashlib

    digest = hashlib.sha256(TOKENS["alice"][0].encode()).hexdigest()
    assert (await api.get("/v1/approvals", headers={"Authorization": f"Bearer {digest}"})).status_code == 401
    for identity in ("reader", "bob"):
        refused = await api.post("/v1/runs", json=loop_body(), headers=auth(identity))
        assert refused.status_code == 403 and "starter" in refused.json()["detail"]
    assert (await api.get("/v1/runs/no-such-run", headers=auth("reader"))).status_code == 404
    # Listing requests needs the approver role (it shows what others may not read): a reader is refused.
    assert (await api.get("/v1/approvals", headers=auth("reader"))).status_code == 403
    assert (await api.get("/v1/approvals", headers=auth("bob"))).status_code == 200


async def test_cancel_is_202_and_the_run_closes_canceled(api, fake_llm):
    fake_llm.push(Reply(tool_calls=[("write_note", NOTE)]))
    started = await api.post("/v1/runs", json=loop_body("save a note"), headers=auth("alice"))
    workflow_id = started.json()["workflow_id"]

    async def waiting():
        view = (await api.get(f"/v1/runs/{workflow_id}", headers=auth("reader"))).json()
        return (view["status"] or {}).get("state") == "waiting_for_approval"

    await eventually(waiting, 20)
    assert (await api.post(f"/v1/runs/{workflow_id}/cancel", headers=auth("bob"))).status_code == 403
    assert (await api.post("/v1/runs/no-such-run/cancel", headers=auth("alice"))).status_code == 404
    cancel = await api.post(f"/v1/runs/{workflow_id}/cancel", headers=auth("alice"))
    assert cancel.status_code == 202, cancel.text
    view = await finished(api, workflow_id)
    assert view["temporal_status"] == "CANCELED" and view["result"] is None
    again = await api.post(f"/v1/runs/{workflow_id}/cancel", headers=auth("alice"))
    assert again.status_code == 409


async def test_openapi_and_health(api):
    health = await api.get("/healthz")
    assert health.status_code == 200 and health.json() == {"status": "serving"}
    document = (await api.get("/openapi.json")).json()
    assert document["openapi"].startswith("3.")
    assert {
        "/v1/runs",
        "/v1/runs/{workflow_id}",
        "/v1/runs/{workflow_id}/cancel",
        "/v1/approvals",
        "/v1/runs/{workflow_id}/approvals/{request_id}",
        "/approve/{link}",
        "/healthz",
    } <= set(document["paths"])
    assert "StartRun" in document["components"]["schemas"]
    assert set(document["paths"]["/v1/runs"]["post"]["responses"]) >= {"200", "201", "401", "403", "409", "422"}
    await asyncio.sleep(0)


# --- the process and its configuration ------------------------------------------------------------


async def test_python_m_gateway_serves_until_sigterm(dev_server, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    import httpx

    from tests.helpers import ROOT

    port = free_port()
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": dev_server.address,
        "GATEWAY_PORT": str(port),
        "GATEWAY_TOKENS": str(write_tokens(tmp_path / "tokens.toml")),
        "GATEWAY_ID_SECRET": "gateway-ids-" + "0" * 32,
    }
    proc = subprocess.Popen([sys.executable, "-m", "gateway"], cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", trust_env=False) as http:

            async def serving():
                return (await http.get("/healthz")).status_code == 200

            await eventually(serving, 30)
            assert (await http.get("/v1/approvals")).status_code == 401
            assert (await http.get("/v1/approvals", headers=auth("bob"))).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, proc.stderr.read() if proc.stderr else ""


def test_a_missing_or_malformed_tokens_file_stops_the_gateway(tmp_path):
    from gateway.tokens import load_tokens
    from models.errors import ConfigError

    with pytest.raises(ConfigError, match="GATEWAY_TOKENS is not set"):
        load_tokens("")
    bad = tmp_path / "bad.toml"
    bad.write_text('[tokens.eve]\nsha256 = "abc"\nroles = ["starter"]\n')
    with pytest.raises(ConfigError, match=r"\[tokens.eve\]: sha256 must be 64 hex digits"):
        load_tokens(str(bad))
    bad.write_text(f'[tokens.eve]\nsha256 = "{"a" * 64}"\nroles = ["root"]\n')
    with pytest.raises(ConfigError, match=r"\[tokens.eve\]: roles must be"):
        load_tokens(str(bad))
    book = load_tokens(str(write_tokens(tmp_path / "ok.toml")))
    assert book.authenticate(TOKENS["bob"][0]).identity == "bob"
    assert book.authenticate("bob") is None


def test_the_webhook_needs_signed_links():
    from config.settings import Settings
    from models.errors import ConfigError

    with pytest.raises(ConfigError, match="APPROVAL_LINK_SECRET"):
        Settings.from_env({"APPROVAL_WEBHOOK_URL": "http://127.0.0.1:9/hook"})
    with pytest.raises(ConfigError, match="at least 32"):
        Settings.from_env({"APPROVAL_LINK_SECRET": "short"})
    ok = Settings.from_env({"APPROVAL_LINK_SECRET": "x" * 32, "GATEWAY_PUBLIC_URL": "http://127.0.0.1:8088"})
    assert ok.gateway.port == 8088 and "x" * 32 not in repr(ok)


def test_a_link_is_refused_when_altered_or_signed_with_another_secret():
    from datetime import UTC, datetime, timedelta

    from activities.approval_links import ApprovalLink, LinkInvalid, sign_link, verify_link

    expires = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    link = ApprovalLink("wf", "run-1", "req-1", "alice", "d" * 64, expires)
    token = sign_link("s" * 32, link)
    assert verify_link("s" * 32, token) == link
    for bad in (token[:-1] + ("0" if token[-1] != "0" else "1"), "x" + token[1:], token.replace(".", ""), ""):
        with pytest.raises(LinkInvalid):
            verify_link("s" * 32, bad)
    with pytest.raises(LinkInvalid):
        verify_link("t" * 32, token)


async def test_the_events_route_streams_the_run_to_any_token_and_resumes(api, fake_llm):
    fake_llm.push(Reply(text="6000 * 0.2 = 1200"))
    started = await api.post("/v1/runs", json=loop_body(), headers=auth("alice"))
    workflow_id = started.json()["workflow_id"]
    assert (await api.get(f"/v1/runs/{workflow_id}/events")).status_code == 401
    await finished(api, workflow_id)

    async def events(headers: dict) -> list[tuple[int, str]]:
        seen = []
        async with api.stream("GET", f"/v1/runs/{workflow_id}/events", headers=headers, timeout=30) as response:
            assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
            offset = None
            async for line in response.aiter_lines():
                if line.startswith("id:"):
                    offset = int(line[3:])
                elif line.startswith("event:"):
                    seen.append((offset, line[6:].strip()))
        return seen

    everything = await events(auth("reader"))
    assert everything[-1][1] == "run_finished" and [o for o, _ in everything] == sorted(o for o, _ in everything)
    middle = everything[len(everything) // 2][0]
    assert await events({**auth("reader"), "Last-Event-ID": str(middle)}) == [e for e in everything if e[0] > middle]
