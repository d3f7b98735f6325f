"""Approvals through the gateway over real HTTP: who sees and decides what, refusals, expiry, the approval webhook."""

from __future__ import annotations

import asyncio
import signal
from urllib.parse import urlsplit

import pytest

from devstack.dev_server import free_port
from devstack.fake_anthropic import Reply
from tests.conftest import workflow_id
from tests.gateway_support import (
    LINK_SECRET,
    WebhookSink,
    auth,
    close_runs,
    gateway_client,
    running_gateway,
    with_gateway,
    write_tokens,
)
from tests.helpers import eventually, pending_approvals

NOTE = {"title": "Answer", "body": "1200"}


@pytest.fixture
def sink():
    with WebhookSink() as receiver:
        yield receiver


@pytest.fixture
def gw_settings(settings, sink):
    """This test's worker settings with links signed for a gateway on a free port and the webhook at `sink`."""
    return with_gateway(settings, free_port(), webhook_url=sink.url)


@pytest.fixture
async def gw_worker(client, gw_settings):
    from worker import build_worker

    async with build_worker(client, gw_settings):
        yield gw_settings


@pytest.fixture
async def api(client, gw_worker, tmp_path):
    tokens = write_tokens(tmp_path / "tokens.toml")
    async with running_gateway(client, gw_worker, tokens) as url, gateway_client(url) as http:
        yield http


async def start(client, settings, approvers, prefix="gw-approval", timeout_seconds=600):
    return await client.start_workflow(
        "AgentLoopWorkflow",
        {"prompt": "save 1200", "approval": {"approvers": approvers, "timeout_seconds": timeout_seconds}},
        id=workflow_id(prefix),
        task_queue=settings.task_queue,
    )


async def visible_to(api, identity: str) -> set[tuple[str, str]]:
    response = await api.get("/v1/approvals", headers=auth(identity))
    assert response.status_code == 200, response.text
    return {(p["workflow_id"], p["request_id"]) for p in response.json()}


async def update_inputs(client, handle) -> list[dict]:
    """The payloads of every `decide` update the run accepted, as recorded in its history."""
    history = await handle.fetch_history()
    inputs = []
    for event in history.events:
        if event.HasField("workflow_execution_update_accepted_event_attributes"):
            args = event.workflow_execution_update_accepted_event_attributes.accepted_request.input.args
            inputs += await client.data_converter.decode(list(args.payloads))
    return inputs


async def test_pending_requests_per_approver_across_runs_and_decisions_as_the_token(api, client, gw_worker, fake_llm):
    fake_llm.push(*[Reply(tool_calls=[("write_note", NOTE)]) for _ in range(4)])
    both = await start(client, gw_worker, ["alice", "bob"])
    only_bob = await start(client, gw_worker, ["bob"])
    nobody = await start(client, gw_worker, [])
    anyone = await start(client, gw_worker, ["*"])
    for handle in (both, only_bob, nobody, anyone):
        await pending_approvals(handle)

    async def listed(identity, expected):
        return await visible_to(api, identity) >= expected

    await eventually(lambda: listed("bob", {(both.id, "req-1"), (only_bob.id, "req-1"), (anyone.id, "req-1")}))
    mine = await visible_to(api, "alice")
    assert (both.id, "req-1") in mine and (only_bob.id, "req-1") not in mine and (anyone.id, "req-1") in mine
    for identity in ("alice", "bob", "carol"):
        assert (nobody.id, "req-1") not in await visible_to(api, identity)  # an empty list: no one, here
    assert (await api.get("/v1/approvals", headers=auth("reader"))).status_code == 403  # not an approver
    [entry] = [p for p in (await api.get("/v1/approvals", headers=auth("bob"))).json() if p["workflow_id"] == both.id]
    assert entry["kind"] == "tool_call" and entry["proposal"] == {"tool": "write_note", "arguments": NOTE}
    assert entry["approvers"] == ["alice", "bob"] and entry["expires_at"]

    path = f"/v1/runs/{both.id}/approvals/req-1"
    # The approver is the token's identity: a body naming one is refused, as is a token without the role.
    spoofed = await api.post(path, json={"approved": True, "approver": "alice"}, headers=auth("carol"))
    assert spoofed.status_code == 422 and spoofed.json()["field"] == "approver"
    assert (await api.post(path, json={"approved": True}, headers=auth("starter"))).status_code == 403
    unlisted = await api.post(path, json={"approved": True}, headers=auth("carol"))
    assert unlisted.status_code == 403 and "'carol' is not allowed" in unlisted.json()["detail"]
    assert (
        await api.post(f"/v1/runs/{both.id}/approvals/req-9", json={"approved": True}, headers=auth("bob"))
    ).status_code == 404
    assert (
        await api.post("/v1/runs/nope/approvals/req-1", json={"approved": True}, headers=auth("bob"))
    ).status_code == 404
    empty = await api.post(f"/v1/runs/{nobody.id}/approvals/req-1", json={"approved": True}, headers=auth("bob"))
    assert empty.status_code == 403 and "lists no approvers" in empty.json()["detail"]

    # The model answers slowly, so the run is still open for the second decision below.
    fake_llm.push(Reply(text="saved", delay=3.0), Reply(text="saved too", delay=3.0))
    decided = await api.post(path, json={"approved": True, "comment": "fine"}, headers=auth("bob"))
    assert decided.status_code == 200, decided.text
    assert decided.json()["approver"] == "bob" and decided.json()["approved"] is True
    assert decided.json()["via"] == "update" and decided.json()["comment"] == "fine"
    assert [u["approver"] for u in await update_inputs(client, both)] == ["bob"]
    second = await api.post(path, json={"approved": False}, headers=auth("alice"))
    assert second.status_code == 409 and "already approved by bob" in second.json()["detail"]

    wildcard = await api.post(f"/v1/runs/{anyone.id}/approvals/req-1", json={"approved": True}, headers=auth("carol"))
    assert wildcard.status_code == 200 and wildcard.json()["approver"] == "carol"
    for handle in (both, anyone):
        assert (await asyncio.wait_for(handle.result(), 20))["status"] == "completed"
    assert (await api.post(path, json={"approved": True}, headers=auth("alice"))).status_code == 409  # run ended
    await close_runs(only_bob, nobody)


async def test_an_expired_request_is_409(api, client, gw_worker, fake_llm):
    # req-1 expires after 2 s; the model is told, and asks again (req-2), so the run is still open.
    fake_llm.push(Reply(tool_calls=[("write_note", NOTE)]), Reply(tool_calls=[("write_note", NOTE)]))
    handle = await start(client, gw_worker, ["bob"], timeout_seconds=2)

    async def second_request():
        pending = (await handle.query("status"))["pending_approvals"]
        return [p["request_id"] for p in pending] == ["req-2"]

    await eventually(second_request, 30)
    expired = await api.post(f"/v1/runs/{handle.id}/approvals/req-1", json={"approved": True}, headers=auth("bob"))
    assert expired.status_code == 409 and "expired" in expired.json()["detail"]
    await close_runs(handle)


# --- the approval webhook --------------------------------------------------------------------------


async def test_one_post_per_opened_request_with_working_links(api, client, gw_worker, sink, fake_llm):
    fake_llm.push(Reply(tool_calls=[("write_note", NOTE)]), Reply(text="saved"))
    handle = await start(client, gw_worker, ["alice", "bob"])
    [notice] = await eventually(lambda: list(sink.delivered.values()), 20)
    [post] = sink.posts
    assert post["key"] == f"approval:{handle.id}:{handle.first_execution_run_id}:req-1" == notice["idempotency_key"]
    assert notice["workflow_id"] == handle.id and notice["request_id"] == "req-1"
    assert notice["proposal"] == {"tool": "write_note", "arguments": NOTE}
    assert [link["approver"] for link in notice["links"]] == ["alice", "bob"]
    assert LINK_SECRET not in str(notice)
    bob = next(link["url"] for link in notice["links"] if link["approver"] == "bob")
    assert bob.startswith(gw_worker.gateway.public_url + "/approve/")

    link_path = urlsplit(bob).path
    page = await api.get(link_path)
    assert page.status_code == 200 and "req-1" in page.text and "Approve" in page.text
    decided = await api.post(link_path, data={"decision": "approve", "comment": "ok"})
    assert decided.status_code == 200 and "Approved" in decided.text
    assert (await asyncio.wait_for(handle.result(), 20))["status"] == "completed"
    assert [u["approver"] for u in await update_inputs(client, handle)] == ["bob"]
    assert (await api.get(link_path)).status_code == 409  # works once
    assert len(sink.posts) == 1
    history = await handle.fetch_history()
    receipts = [e for e in history.events if e.HasField("activity_task_completed_event_attributes")]
    assert receipts  # the notice's receipt is in history; its links are not
    assert b"/approve/" not in b"".join(e.SerializeToString() for e in history.events)


async def test_the_webhook_is_retried_on_5xx(client, gw_worker, sink, fake_llm):
    sink.fail_first = 2
    fake_llm.push(Reply(tool_calls=[("write_note", NOTE)]))
    handle = await start(client, gw_worker, ["alice"])
    await eventually(lambda: sink.delivered, 20)
    assert len(sink.posts) == 3 and len({p["key"] for p in sink.posts}) == 1
    assert len(sink.delivered) == 1

    async def third_attempt_completed():
        events = (await handle.fetch_history()).events
        started = [
            e.activity_task_started_event_attributes.attempt
            for e in events
            if e.HasField("activity_task_started_event_attributes")
        ]
        done = any(e.HasField("activity_task_completed_event_attributes") for e in events)
        return done and 3 in started

    await eventually(third_attempt_completed, 20)  # Temporal's retries, visible in the run's history
    await close_runs(handle)


async def test_a_worker_crash_mid_post_never_sends_two_notices(client, settings, worker_processes, fake_llm):
    with WebhookSink(hold_first=2.0) as receiver:
        port = free_port()
        env = {
            "APPROVAL_WEBHOOK_URL": receiver.url,
            "APPROVAL_LINK_SECRET": LINK_SECRET,
            "GATEWAY_PUBLIC_URL": f"http://127.0.0.1:{port}",
        }
        fake_llm.push(Reply(tool_calls=[("write_note", NOTE)]))
        first = worker_processes(**env)
        handle = await start(client, settings, ["alice"])
        await eventually(lambda: receiver.posts, 20)
        first.proc.send_signal(signal.SIGKILL)  # the POST is in flight: its answer never reaches Temporal
        first.proc.wait()
        worker_processes(**env)
        await eventually(lambda: len(receiver.posts) >= 2, 40)  # the activity's timeout passed; another worker posts
        assert len({p["key"] for p in receiver.posts}) == 1
        assert len(receiver.delivered) == 1
        history = await handle.fetch_history()
        scheduled = [
            e
            for e in history.events
            if e.activity_task_scheduled_event_attributes.activity_type.name == "notify_approval"
        ]
        assert len(scheduled) == 1  # the run asked once; only the activity's attempt was repeated
        await close_runs(handle)
