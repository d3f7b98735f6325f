"""The payload codec on a real dev server: a 5 MB tool output, and encrypted runs read through the codec server."""

from __future__ import annotations

import base64
import dataclasses
import json
import os

import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from config.settings import Settings
from devstack.fake_anthropic import Reply
from models.conversation import ToolOutcome
from payloads.blobs import blob_store
from payloads.codec import CLAIM_CHECK_ENCODING, ENCRYPTED_ENCODING
from payloads.codec_server import CodecServer
from payloads.converter import payload_codec
from service.connect import connect
from tests.conftest import workflow_id
from tests.replay_check import register_environment
from tests.test_cli import temporal
from tests.test_codec_units import big_text, post
from tools.notes import NoteStore

SECRET = "IBAN DE44 5001 0517 5407 3249 31"
TOKEN = "codec-test-token"


def activity_results(history, activity: str) -> list:
    """Result payloads of every completed activity of type `activity`, in order."""
    scheduled = {
        e.event_id: e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    }
    results = []
    for e in history.events:
        if e.HasField("activity_task_completed_event_attributes"):
            if scheduled[e.activity_task_completed_event_attributes.scheduled_event_id] == activity:
                results.append(e.activity_task_completed_event_attributes.result)
        elif e.HasField("marker_recorded_event_attributes"):  # a local activity (a short read tool): its marker
            marker = e.marker_recorded_event_attributes
            local = marker.marker_name == "core_local_activity" and "result" in marker.details
            if local and json.loads(marker.details["data"].payloads[0].data).get("activity_type") == activity:
                results.append(marker.details["result"])
    return results


async def run_big_tool(client, settings, fake_llm, *, offload: bool):
    """A run whose one tool call returns a 5 MB note, on a worker with conversation offload on or off."""
    from worker import build_worker

    ledger = big_text(5 * 1024 * 1024)
    NoteStore(settings.notes_db).write("seeded-by-test", "Quarterly ledger", ledger)
    fake_llm.push(
        Reply(tool_calls=[("search_notes", {"query": "Quarterly ledger"})]), Reply(text="The ledger is long.")
    )
    limits = settings.history.model_copy(update={"offload": offload})
    async with build_worker(client, dataclasses.replace(settings, history=limits)):
        handle = await client.start_workflow(
            "AgentLoopWorkflow",
            # ~1.7M estimated input tokens follow the 5 MB output: a budget that can pay for the next call.
            {"prompt": "Read my quarterly ledger.", "budget": {"max_tokens": 10_000_000, "max_cost_usd": 1000.0}},
            id=workflow_id("big-tool"),
            task_queue=settings.task_queue,
        )
        result = await handle.result()
    assert result["status"] == "completed" and result["output"] == "The ledger is long."
    history = await handle.fetch_history()
    # However the output travels, nothing in history comes near Temporal's 2 MB payload limit.
    assert max(e.ByteSize() for e in history.events) < 300 * 1024
    assert sum(e.ByteSize() for e in history.events) < 1024 * 1024
    fake_llm.assert_script_consumed()
    [tool_result] = activity_results(history, "run_tool")
    return f"#1 Quarterly ledger: {ledger}", tool_result


async def test_five_megabyte_tool_output_round_trips_through_the_claim_check(client, settings, fake_llm):
    # Conversation offload off: the whole output is run_tool's result, and the codec claim-checks it.
    expected, tool_result = await run_big_tool(client, settings, fake_llm, offload=False)
    [ticket] = tool_result.payloads
    assert ticket.metadata["encoding"] == CLAIM_CHECK_ENCODING and ticket.ByteSize() < 300
    [outcome] = await client.data_converter.decode(tool_result.payloads, [ToolOutcome])
    assert outcome.content == expected


async def test_five_megabyte_tool_output_is_kept_whole_in_the_store_with_offload(client, settings, fake_llm):
    # Offload on (the default): run_tool stores the output itself and history keeps a preview and its key.
    expected, tool_result = await run_big_tool(client, settings, fake_llm, offload=True)
    [outcome] = await client.data_converter.decode(tool_result.payloads, [ToolOutcome])
    assert (
        outcome.content_ref is not None
        and len(outcome.content) < 1000
        and expected.startswith(outcome.content.split("\n")[0][:100])
    )
    assert blob_store(settings.blobs, settings.payloads).get(outcome.content_ref).decode() == expected


@pytest.fixture
def encrypted_env() -> dict[str, str]:
    """This process's environment plus a payload key: what an encrypting worker and starter would have."""
    return register_environment(
        {
            **os.environ,
            "PAYLOAD_ENCRYPTION_KEY": base64.b64encode(os.urandom(32)).decode(),
            "PAYLOAD_ENCRYPTION_KEY_ID": "test-2026",
        }
    )


async def test_encrypted_run_is_unreadable_in_history_and_readable_through_the_codec_server(
    client, dev_server, settings, fake_llm, encrypted_env
):
    from worker import build_worker

    secure = await connect(Settings.from_env(encrypted_env), target_host=dev_server.address)
    fake_llm.push(Reply(text=f"Noted: your account is {SECRET}."))
    async with build_worker(secure, settings):
        handle = await secure.start_workflow(
            "AgentLoopWorkflow",
            {"prompt": f"Remember my account {SECRET}", "customer_id": "C77"},
            id=workflow_id("encrypted"),
            task_queue=settings.task_queue,
        )
        result = await handle.result()
    assert result["status"] == "completed" and SECRET in result["output"]

    # The raw history, as the server stores it and any client without the key sees it: no plaintext anywhere.
    history = await client.get_workflow_handle(handle.id).fetch_history()
    raw = b"".join(e.SerializeToString() for e in history.events)
    assert SECRET.encode() not in raw and b"Remember my account" not in raw
    started = history.events[0].workflow_execution_started_event_attributes.input
    assert [p.metadata["encoding"] for p in started.payloads] == [ENCRYPTED_ENCODING]
    assert started.payloads[0].metadata["encryption-key-id"] == b"test-2026"
    with pytest.raises(Exception, match="encoding"):  # a client without the codec cannot read the result
        await client.get_workflow_handle(handle.id).result()

    with CodecServer(payload_codec(Settings.from_env(encrypted_env)), TOKEN) as server:
        body = json.dumps(json_format.MessageToDict(started)).encode()
        status, _, answer = post(
            f"{server.url}/decode", body, {"Authorization": f"Bearer {TOKEN}", "X-Namespace": "default"}
        )
        assert status == 200
        [decoded] = json_format.Parse(answer, Payloads()).payloads
        assert (
            decoded.metadata["encoding"] == b"json/plain"
            and json.loads(decoded.data)["prompt"] == f"Remember my account {SECRET}"
        )
        assert post(f"{server.url}/decode", body)[0] == 401
        assert post(f"{server.url}/decode", body, {"Authorization": "Bearer guess"})[0] == 403

        # The temporal CLI speaks the same protocol: with the endpoint and token it shows the plaintext.
        code, shown = await temporal(
            dev_server,
            "workflow",
            "show",
            "-w",
            handle.id,
            "-o",
            "json",
            "--codec-endpoint",
            server.url,
            "--codec-auth",
            f"Bearer {TOKEN}",
        )
        assert code == 0, shown
        assert SECRET in payload_texts(json.loads(shown))
        code, shown = await temporal(dev_server, "workflow", "show", "-w", handle.id, "-o", "json")
        assert code == 0 and SECRET not in payload_texts(json.loads(shown))


def payload_texts(node) -> str:
    """Every payload `data` in a `temporal workflow show -o json` document, base64-decoded and joined."""
    if isinstance(node, dict):
        own = node.get("data") if isinstance(node.get("data"), str) and "metadata" in node else None
        decoded = base64.b64decode(own).decode(errors="replace") if own else ""
        return decoded + "".join(payload_texts(v) for v in node.values())
    if isinstance(node, list):
        return "".join(payload_texts(v) for v in node)
    return ""
