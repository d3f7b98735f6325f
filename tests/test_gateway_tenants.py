"""The gateway's boundaries over real HTTP (uvicorn) and a real dev server: the run enforces who may approve,
each tenant sees only its own runs, gateway-made ids cannot be computed, approval links decide only their run."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from activities.approval_links import ApprovalLink, proposal_digest, sign_link
from devstack.dev_server import free_port
from devstack.fake_anthropic import Reply
from tests.conftest import workflow_id
from tests.gateway_support import LINK_SECRET, gateway_client, running_gateway, with_gateway
from tests.helpers import eventually, pending_approvals
from tools.notes import NoteStore

NOTE = {"title": "Answer", "body": "1200"}
PEOPLE = {
    # identity: (token, roles, tenant or None for the default tenant)
    "ann": ("ann-token-acme", ["starter", "approver"], "acme"),
    "art": ("art-token-acme", ["approver"], "acme"),
    "gil": ("gil-token-globex", ["starter", "approver"], "globex"),
    "dee": ("dee-token-default", ["starter", "approver"], None),
    "root": ("root-token-admin", ["admin", "approver"], "ops"),
}


def headers(identity: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {PEOPLE[identity][0]}", **extra}


@pytest.fixture
async def gw(client, settings, tmp_path):
    """A worker and a gateway on this test's task queue, with tenant tokens; yields (http client, settings)."""
    from worker import build_worker

    lines = []
    for identity, (token, roles, tenant) in PEOPLE.items():
        lines += [
            f"[tokens.{identity}]",
            f'sha256 = "{hashlib.sha256(token.encode()).hexdigest()}"',
            f"roles = {roles}",
        ]
        lines += [f'tenant = "{tenant}"'] if tenant else []
    tokens = tmp_path / "tokens.toml"
    tokens.write_text("\n".join(lines).replace("'", '"') + "\n")
    gw_settings = with_gateway(settings, free_port())
    async with (
        build_worker(client, gw_settings),
        running_gateway(client, gw_settings, tokens) as url,
        gateway_client(url) as http,
    ):
        yield http, gw_settings


def note_run(approvers: list[str] | None = None) -> dict:
    """A loop run that asks to write a note (approval needed); without `approvers` its input names no approval."""
    payload: dict = {"prompt": "save 1200"}
    if approvers is not None:
        payload["approval"] = {"approvers": approvers}
    return {"workflow": "AgentLoopWorkflow", "input": payload}


async def started(http, identity: str, body: dict, key: str | None = None) -> str:
    extra = {"Idempotency-Key": key} if key else {}
    response = await http.post("/v1/runs", json=body, headers=headers(identity, **extra))
    assert response.status_code in (200, 201), response.text
    return response.json()["workflow_id"]


async def test_no_ordering_of_requests_lets_an_unlisted_approver_decide(gw, client, fake_llm):
    http, settings = gw
    fake_llm.responder = lambda body: (
        Reply(text="done") if "tool_result" in str(body["messages"]) else Reply(tool_calls=[("write_note", NOTE)])
    )
    nobody = await started(http, "ann", note_run())  # no approval in the input: an empty list, no one via the gateway
    only_ann = await started(http, "ann", note_run(["ann"]))
    for wid in (nobody, only_ann):
        await pending_approvals(client.get_workflow_handle(wid))

    async def burst(wid: str) -> list[int]:
        path = f"/v1/runs/{wid}/approvals/req-1"
        answers = await asyncio.gather(
            *(http.post(path, json={"approved": True}, headers=headers("art")) for _ in range(16))
        )
        return [a.status_code for a in answers]

    assert await burst(nobody) == [403] * 16
    assert await burst(only_ann) == [403] * 16
    # The run itself refuses what the gateway vouches for, whatever reaches it: the rule is not the gateway's alone.
    update = {"request_id": "req-1", "approved": True, "approver": "art", "authenticated_by": "gateway"}
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await client.get_workflow_handle(only_ann).execute_update("decide", update)
    assert "not allowed to decide req-1 through the gateway" in str(refused.value.cause)
    for wid in (nobody, only_ann):
        status = await client.get_workflow_handle(wid).query("status")
        assert [p["request_id"] for p in status["pending_approvals"]] == ["req-1"] and not status["decided_approvals"]
    assert NoteStore(settings.notes_db).all() == []  # no write happened

    decided = await http.post(f"/v1/runs/{only_ann}/approvals/req-1", json={"approved": True}, headers=headers("ann"))
    assert decided.status_code == 200 and decided.json()["approver"] == "ann"
    again = await http.post(f"/v1/runs/{only_ann}/approvals/req-1", json={"approved": True}, headers=headers("ann"))
    assert again.status_code == 409 and "already approved by ann" in again.json()["detail"]
    unknown = await http.post(f"/v1/runs/{only_ann}/approvals/req-7", json={"approved": True}, headers=headers("ann"))
    assert unknown.status_code == 404
    assert (await client.get_workflow_handle(only_ann).result())["status"] == "completed"
    await client.get_workflow_handle(nobody).terminate("test over")


async def test_each_tenant_sees_only_its_own_runs(gw, client, fake_llm):
    http, settings = gw
    fake_llm.responder = lambda body: Reply(tool_calls=[("write_note", NOTE)])
    acme = await started(http, "ann", note_run(["*"]))
    sdk = await client.start_workflow(
        "AgentLoopWorkflow",
        {"prompt": "save 1200", "approval": {"approvers": ["*"]}, "customer_id": "C-sdk"},
        id=workflow_id("sdk-run"),
        task_queue=settings.task_queue,
    )
    await pending_approvals(client.get_workflow_handle(acme))
    await pending_approvals(sdk)

    # The tenant is recorded twice: in the memo and in the TenantId search attribute.
    description = await client.get_workflow_handle(acme).describe()
    assert (await description.memo())["tenant"] == "acme"
    assert [w.id async for w in client.list_workflows(f'TenantId="acme" AND WorkflowId="{acme}"')] == [acme]

    for identity in ("gil", "dee"):  # another tenant: as if the run did not exist
        assert (await http.get(f"/v1/runs/{acme}", headers=headers(identity))).status_code == 404
        assert (await http.get(f"/v1/runs/{acme}/events", headers=headers(identity))).status_code == 404
        assert (await http.post(f"/v1/runs/{acme}/cancel", headers=headers(identity))).status_code == 404
        decide = await http.post(f"/v1/runs/{acme}/approvals/req-1", json={"approved": True}, headers=headers(identity))
        assert decide.status_code == 404
        missing = await http.get("/v1/runs/no-such-run", headers=headers(identity))
        assert (
            missing.json()["detail"].replace("no-such-run", acme)
            == (await http.get(f"/v1/runs/{acme}", headers=headers(identity))).json()["detail"]
        )
    assert (await http.get(f"/v1/runs/{acme}", headers=headers("art"))).status_code == 200
    assert (await http.get(f"/v1/runs/{acme}", headers=headers("root"))).status_code == 200  # admin: every tenant
    # A run started with the SDK records no tenant: it belongs to the default tenant.
    assert (await http.get(f"/v1/runs/{sdk.id}", headers=headers("dee"))).status_code == 200
    assert (await http.get(f"/v1/runs/{sdk.id}", headers=headers("ann"))).status_code == 404

    async def listed(identity: str) -> set[str]:
        response = await http.get("/v1/approvals", headers=headers(identity))
        assert response.status_code == 200, response.text
        return {p["workflow_id"] for p in response.json()}

    await eventually(lambda: _contains(listed("art"), acme))
    await eventually(lambda: _contains(listed("dee"), sdk.id))
    await eventually(lambda: _contains(listed("root"), acme, sdk.id))
    assert acme not in await listed("gil") and sdk.id not in await listed("gil")
    assert sdk.id not in await listed("art") and acme not in await listed("dee")
    [entry] = [p for p in (await http.get("/v1/approvals", headers=headers("art"))).json() if p["workflow_id"] == acme]
    assert entry["request_id"] == "req-1" and entry["proposal"] == {"tool": "write_note", "arguments": NOTE}

    cancel = await http.post(f"/v1/runs/{acme}/cancel", headers=headers("ann"))
    assert cancel.status_code == 202
    await sdk.terminate("test over")


async def _contains(found, *wanted: str) -> bool:
    return set(wanted) <= await found


async def test_gateway_ids_cannot_be_computed_or_taken(gw, client, fake_llm):
    http, _ = gw
    fake_llm.responder = lambda body: Reply(text="ok")
    first = await started(http, "ann", note_run(), key="order-42")
    assert await started(http, "ann", note_run(), key="order-42") == first  # the same key, the same run
    # Another caller with the same key gets another run; nobody can derive either id from identity and key.
    other = await started(http, "gil", note_run(), key="order-42")
    assert other != first
    for identity in ("ann", "gil"):
        assert hashlib.sha256(f"{identity}\norder-42".encode()).hexdigest()[:32] not in (first, other)
    squat = await http.post("/v1/runs", json={**note_run(), "workflow_id": first}, headers=headers("gil"))
    assert squat.status_code == 422 and squat.json()["field"] == "workflow_id"
    for wid in (first, other):
        await client.get_workflow_handle(wid).result()


async def test_an_approval_link_decides_only_the_run_it_was_made_for(gw, client, fake_llm):
    http, settings = gw
    fake_llm.responder = lambda body: Reply(tool_calls=[("write_note", NOTE)])
    wid = workflow_id("link-run")
    payload = {"prompt": "save 1200", "approval": {"approvers": ["ann"]}}
    first = await client.start_workflow("AgentLoopWorkflow", payload, id=wid, task_queue=settings.task_queue)
    [pending] = await pending_approvals(first)
    digest = proposal_digest(pending["kind"], pending["summary"], pending["proposal"])
    expires = datetime.now(UTC) + timedelta(days=1)
    link = sign_link(LINK_SECRET, ApprovalLink(wid, first.result_run_id or "", "req-1", "ann", digest, expires))
    await first.terminate("replaced")
    # A later run under the same workflow id opens the same request with the same proposal.
    second = await client.start_workflow("AgentLoopWorkflow", payload, id=wid, task_queue=settings.task_queue)
    await pending_approvals(second)
    page = await http.get(f"/approve/{link}")
    assert page.status_code == 409 and "earlier run" in page.text
    post = await http.post(f"/approve/{link}", data={"decision": "approve"})
    assert post.status_code == 409
    assert [p["request_id"] for p in (await second.query("status"))["pending_approvals"]] == ["req-1"]
    # A link made for the second run decides it.
    fresh = sign_link(LINK_SECRET, ApprovalLink(wid, second.result_run_id or "", "req-1", "ann", digest, expires))
    assert (await http.post(f"/approve/{fresh}", data={"decision": "approve"})).status_code == 200
    await second.terminate("test over")


async def one_update_attempt(client, workflow_id: str, name: str, arg: object) -> RPCError:
    """The server's answer to one update request, sent once (the SDK's `execute_update` retries refusals)."""
    from temporalio.api.common.v1 import WorkflowExecution
    from temporalio.api.enums.v1 import UpdateWorkflowExecutionLifecycleStage
    from temporalio.api.update.v1 import Input, Meta, Request, WaitPolicy
    from temporalio.api.workflowservice.v1 import UpdateWorkflowExecutionRequest

    [payload] = await client.data_converter.encode([arg])
    request = UpdateWorkflowExecutionRequest(
        namespace=client.namespace,
        workflow_execution=WorkflowExecution(workflow_id=workflow_id),
        request=Request(meta=Meta(update_id=uuid.uuid4().hex), input=Input(name=name, args={"payloads": [payload]})),
        wait_policy=WaitPolicy(
            lifecycle_stage=UpdateWorkflowExecutionLifecycleStage.UPDATE_WORKFLOW_EXECUTION_LIFECYCLE_STAGE_ACCEPTED
        ),
    )
    with pytest.raises(RPCError) as raised:
        await client.workflow_service.update_workflow_execution(request, retry=False)
    return raised.value


async def test_a_decision_still_lands_when_the_run_has_no_room_for_another_update(settings, fake_llm, tmp_path):
    """A server that allows one in-flight update per run, held by a follower's poll: the approval goes by signal."""
    from temporalio.contrib.workflow_streams import WorkflowStreamClient

    from config.settings import Settings
    from devstack.dev_server import start_dev_server
    from models.progress import PROGRESS_TOPIC
    from service.connect import connect
    from tests.replay_check import assert_replays
    from worker import build_worker

    fake_llm.responder = lambda body: (
        Reply(text="saved") if "tool_result" in str(body["messages"]) else Reply(tool_calls=[("write_note", NOTE)])
    )
    server = start_dev_server(
        port=free_port(),
        ui_port=None,
        db_file=str(tmp_path / "one-update.db"),
        dynamic_config=("history.maxInFlightUpdates=1",),
    )
    try:
        await server.wait_serving()
        client = await connect(Settings.from_env(), target_host=server.address)
        gw_settings = with_gateway(settings, free_port())
        tokens = tmp_path / "tokens.toml"
        token, roles, _ = PEOPLE["dee"]
        tokens.write_text(
            f'[tokens.dee]\nsha256 = "{hashlib.sha256(token.encode()).hexdigest()}"\nroles = {roles}\n'.replace(
                "'", '"'
            )
        )
        async with (
            build_worker(client, gw_settings),
            running_gateway(client, gw_settings, tokens) as url,
            gateway_client(url) as http,
        ):
            wid = await started(http, "dee", note_run(["dee"]))
            await pending_approvals(client.get_workflow_handle(wid))
            # A poll from past the stream's end waits for an event that does not come: the run's one update slot.
            stream = WorkflowStreamClient.create(client, wid)
            poll = asyncio.create_task(anext(aiter(stream.subscribe(PROGRESS_TOPIC, 10_000))))
            await asyncio.sleep(1.0)
            full = {"request_id": "req-9", "approved": True, "approver": "x"}
            # The server refuses another update at once (asked once, without the SDK's ~15 s of retries); the
            # gateway waits at most UPDATE_PATIENCE for its update, then sends the decision as a signal.
            refused = await one_update_attempt(client, wid, "decide", full)
            assert refused.status == RPCStatusCode.RESOURCE_EXHAUSTED and "in-flight" in refused.message
            decided = await http.post(
                f"/v1/runs/{wid}/approvals/req-1", json={"approved": True}, headers=headers("dee")
            )
            assert decided.status_code == 200, decided.text
            assert decided.json()["via"] == "signal" and decided.json()["approver"] == "dee"
            assert (await client.get_workflow_handle(wid).result())["status"] == "completed"
            poll.cancel()
        await assert_replays(client, "tests/test_gateway_tenants.py::test_a_decision_still_lands...", [wid])
    finally:
        server.stop()
