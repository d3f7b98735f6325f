"""With PAYLOAD_ENCRYPTION_KEY set nothing a run handles is readable at rest: not in the blob store, not in
history (failure messages included), not in Langfuse with LANGFUSE_CAPTURE_CONTENT=0; the archive command
and the codec server show it decrypted to whoever holds the key.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads
from temporalio.api.history.v1 import History
from temporalio.client import WorkflowFailureError

from config.payloads import PayloadSettings
from config.settings import Settings
from devstack.fake_anthropic import Reply
from devstack.fake_langfuse import FakeLangfuse
from devstack.scripted_http import Fault
from payloads.blobs import LocalBlobStore
from payloads.codec_server import CodecServer
from payloads.converter import payload_codec
from payloads.sealed import MAGIC, SealedBlobStore
from service.connect import connect
from tests.conftest import workflow_id
from tests.helpers import ROOT, pending_approvals
from tests.replay_check import register_environment

KEY = base64.b64encode(b"k" * 32).decode()
OLD_KEY = base64.b64encode(b"o" * 32).decode()
MARKER = "DE89370400440532013000-marker"  # an IBAN-like string that must never be readable at rest
FAILURE_MARKER = "quota-of-account-77231-marker"
TOKEN = "at-rest-token-1234"


@pytest.fixture
def sealed_env(tmp_path, settings) -> dict[str, str]:
    """The worker's environment: encryption on, a blob store of this test's own."""
    env = {"PAYLOAD_ENCRYPTION_KEY": KEY, "BLOB_STORE_DIR": str(tmp_path / "sealed-blobs")}
    register_environment({**os.environ, **env})  # the final replay check reads its runs with this key and store
    return env


@pytest.fixture
async def sealed_client(dev_server, sealed_env):
    return await connect(Settings.from_env({**os.environ, **sealed_env}), target_host=dev_server.address)


def test_the_sealed_store_hides_equality_and_rotates(tmp_path):
    keys = PayloadSettings(key_id="new", keys={"new": b"n" * 32, "old": b"o" * 32})
    inner = LocalBlobStore(tmp_path)
    old = SealedBlobStore(inner, "old", {"old": b"o" * 32})
    key_old = old.put(b"same bytes")
    store = SealedBlobStore(inner, keys.key_id, keys.keys)
    key_new = store.put(b"same bytes")
    assert key_new.startswith("hmac:") and key_new != key_old  # a new key, a new address; no plain sha256
    assert store.put(b"same bytes") == key_new  # still idempotent
    assert store.get(key_old) == store.get(key_new) == b"same bytes"  # the retired key still opens old blobs
    assert all(p.read_bytes().startswith(MAGIC) for p in (tmp_path / "blobs").rglob("*") if p.is_file())
    store.put_object("archives/a.json", b'{"secret": 1}')
    assert b"secret" not in (tmp_path / "objects" / "archives" / "a.json").read_bytes()
    assert store.get_object("archives/a.json") == b'{"secret": 1}'
    # A blob moved to another address fails authentication.
    (tmp_path / "objects" / "archives" / "b.json").write_bytes((tmp_path / "objects/archives/a.json").read_bytes())
    with pytest.raises(Exception, match="failed authentication"):
        store.get_object("archives/b.json")


async def test_nothing_of_a_run_is_readable_at_rest(
    sealed_client, sealed_env, settings, fake_llm, worker_processes, tmp_path
):
    long_body = f"Account {MARKER}. " + "x" * 1500  # over 1,000 characters: its search output is stored whole
    fake_llm.push(
        Reply(tool_calls=[("write_note", {"title": "Payee", "body": long_body})]),
        Reply(tool_calls=[("search_notes", {"query": "Account"})]),
        Reply(text=f"Saved and found the note for {MARKER}."),
    )
    with FakeLangfuse(secret_key="sk-lf-test-at-rest-1") as sink:
        worker = worker_processes(**sealed_env, **sink.env(), LANGFUSE_CAPTURE_CONTENT="0")
        handle = await sealed_client.start_workflow(
            "AgentLoopWorkflow",
            {"prompt": f"Save a note about account {MARKER}, then find it."},
            id=workflow_id("at-rest"),
            task_queue=settings.task_queue,
        )
        await pending_approvals(handle, timeout=60)
        await handle.signal("approve", {"approver": "alice"})
        result = await handle.result()
        assert worker.terminate() == 0  # flushes the exporter
    assert result["status"] == "completed" and MARKER in result["output"]

    marker = MARKER.encode()
    files = [p for p in Path(sealed_env["BLOB_STORE_DIR"]).rglob("*") if p.is_file()]
    assert len(files) >= 4  # conversation nodes, the stored search output, the pinned spec, the archive
    assert not [p for p in files if marker in p.read_bytes()], "plaintext in the blob store"
    assert all(p.read_bytes().startswith(MAGIC) for p in files)
    history = await handle.fetch_history()
    assert marker not in history.to_json().encode() and marker not in History(events=history.events).SerializeToString()

    # The archive command decrypts for display.
    shown = subprocess.run(
        [sys.executable, "-m", "archives", "show", handle.id],
        cwd=ROOT,
        env={**os.environ, **sealed_env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    assert MARKER in shown.stdout and long_body in shown.stdout

    # Langfuse got the generations and tool spans, without their content.
    kinds = {s.observation_type for s in sink.spans}
    assert {"generation", "tool"} <= kinds
    assert not [s.name for s in sink.spans if MARKER in json.dumps(s.attributes, default=str)]


async def test_a_failure_message_is_sealed_in_history_and_readable_through_the_codec_server(
    sealed_client, sealed_env, settings, fake_llm, worker_processes
):
    fake_llm.push(Fault(400, f"invalid request for {FAILURE_MARKER}"))
    worker_processes(**sealed_env)
    handle = await sealed_client.start_workflow(
        "AgentLoopWorkflow", {"prompt": "hello"}, id=workflow_id("sealed-failure"), task_queue=settings.task_queue
    )
    with pytest.raises(WorkflowFailureError) as failed:
        await handle.result()
    # The client holds the key: it decodes the message.
    assert FAILURE_MARKER in str(failed.value.cause) or FAILURE_MARKER in str(failed.value.cause.__cause__)

    history = await handle.fetch_history()
    raw = history.to_json()
    assert FAILURE_MARKER.encode() not in History(events=history.events).SerializeToString()
    assert "Encoded failure" in raw  # what the UI shows without the codec
    encoded = [
        e.workflow_execution_failed_event_attributes.failure.encoded_attributes
        for e in history.events
        if e.HasField("workflow_execution_failed_event_attributes")
    ]
    assert encoded and encoded[0].metadata
    codec = payload_codec(Settings.from_env({**os.environ, **sealed_env}))
    with CodecServer(codec, TOKEN) as server:
        body = json.dumps(json_format.MessageToDict(Payloads(payloads=encoded))).encode()
        request = urllib.request.Request(
            f"{server.url}/decode", data=body, headers={"Authorization": f"Bearer {TOKEN}"}, method="POST"
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            [decoded] = json_format.Parse(response.read(), Payloads()).payloads
    attributes = json.loads(decoded.data)
    assert FAILURE_MARKER in attributes["message"] or FAILURE_MARKER in json.dumps(attributes)
