"""Run archives end to end: written once per run by all three workflows, annotations readable, findable by field."""

from __future__ import annotations

import base64
import json
import subprocess
import sys

from archives.annotations import Annotator, sidecar_name
from archives.models import ANNOTATION_NAMES
from archives.store import archive_name, list_archives
from devstack.fake_anthropic import Reply
from devstack.scripted_model import respond
from payloads.blobs import LocalBlobStore
from tests.conftest import workflow_id
from tests.helpers import ROOT, eventually, pending_approvals
from tests.test_replay import replayer
from tools.notes import NoteStore


def archived(blob_dir, handle) -> tuple[dict, dict]:
    """(archive document, sidecar annotations) of a finished run."""
    store = LocalBlobStore(blob_dir)
    name = archive_name(handle.id, handle.first_execution_run_id)
    return json.loads(store.get_object(name)), json.loads(store.get_object(sidecar_name(name)))


def local_activities(history, activity_type: str = "archive_run") -> list:
    """Marker events of one local activity type (patch markers are another kind; `history_limits` is another type)."""
    return [
        e
        for e in history.events
        if e.marker_recorded_event_attributes.marker_name == "core_local_activity"
        and activity_type.encode() in e.SerializeToString()
    ]


async def test_agent_loop_archives_once_with_conversation_and_annotations(client, worker, fake_llm, blob_dir):
    fake_llm.push(
        Reply(tool_calls=[("calculator", {"expression": "6000 * 0.2"})]),
        Reply(text="Customer C123 keeps 1200 a month."),
    )
    handle = await client.start_workflow(
        "AgentLoopWorkflow",
        {"prompt": "What is 6000 * 0.2?", "customer_id": "C123"},
        id=workflow_id("archive-loop"),
        task_queue=worker.task_queue,
    )
    result = await handle.result()

    document, annotations = archived(blob_dir, handle)
    assert document["workflow_type"] == "AgentLoopWorkflow" and document["status"] == "completed"
    assert document["output"] == result["output"] and document["trace_id"] == result["trace_id"]
    roles = [m["role"] for m in document["conversations"]["agent"]["messages"]]
    assert roles == ["user", "assistant", "user", "assistant"]
    assert set(annotations) == set(ANNOTATION_NAMES)
    assert annotations["final_answer"] == "Customer C123 keeps 1200 a month."
    assert annotations["customer_id"] == "C123" and annotations["status"] == "completed" and annotations["plan"] is None

    # The archive's input never entered history: a local activity records only its small receipt.
    history = await handle.fetch_history()
    local = local_activities(history)
    assert len(local) == 1 and local[0].ByteSize() < 2048 and b"What is 6000" not in local[0].SerializeToString()
    # Replaying the run writes nothing.
    store = LocalBlobStore(blob_dir)
    before = {n: store.get_object(n) for n in store.list_objects(f"archives/{handle.id}/")}
    await replayer().replay_workflow(history)
    assert {n: store.get_object(n) for n in store.list_objects(f"archives/{handle.id}/")} == before and len(before) == 2

    found = list_archives(store, Annotator(store), [("final_answer", "~", "c123"), ("status", "=", "completed")])
    assert handle.id in [row["workflow_id"] for row in found]
    assert handle.id not in [
        r["workflow_id"] for r in list_archives(store, Annotator(store), [("status", "=", "failed")])
    ]
    fake_llm.assert_script_consumed()


async def test_archive_holds_the_whole_conversation_and_stored_tool_outputs(client, worker, fake_llm, blob_dir):
    # The run keeps its conversation by reference and the long output as a stored blob with a preview;
    # the archive is still self-contained: every message, and the full output embedded by its key.
    body = "ledger line\n" * 400
    NoteStore(worker.notes_db).write("seeded-by-test", "Ledger", body)
    fake_llm.push(Reply(tool_calls=[("search_notes", {"query": "Ledger"})]), Reply(text="Read it."))
    handle = await client.start_workflow(
        "AgentLoopWorkflow", {"prompt": "Read my ledger."}, id=workflow_id("archive-refs"), task_queue=worker.task_queue
    )
    assert (await handle.result())["status"] == "completed"

    document, _ = archived(blob_dir, handle)
    messages = document["conversations"]["agent"]["messages"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    [result_block] = messages[2]["content"]
    key = result_block["content_ref"]
    assert key and len(result_block["content"]) < len(body)
    embedded = document["items"][key]
    assert "missing" not in embedded
    text = embedded.get("json") or base64.b64decode(embedded["base64"]).decode()
    assert text == f"#1 Ledger: {body}"


async def test_blackbox_and_hybrid_archive_their_structured_outputs(client, worker, fake_llm, blob_dir):
    fake_llm.responder = respond
    blackbox = await client.start_workflow(
        "BlackBoxAgentWorkflow",
        {
            "prompt": "plan my money",
            "parallel": True,
            "customer_id": "C9",
            "steps": [
                {"agent": "budget", "prompt": "My income is 6000 a month."},
                {"agent": "analysis", "prompt": "Invest 500 a month for 10 years at 5%."},
            ],
        },
        id=workflow_id("archive-blackbox"),
        task_queue=worker.task_queue,
    )
    hybrid = await client.start_workflow(
        "HybridAgentWorkflow",
        {
            "prompt": "My income is 6000 a month; plan a budget and decide whether to invest 500 a month.",
            "customer_id": "C9",
        },
        id=workflow_id("archive-hybrid"),
        task_queue=worker.task_queue,
    )
    for _ in ("plan", "write_note"):
        [pending] = await pending_approvals(hybrid, timeout=60)
        await hybrid.signal("approve", {"approver": "alice", "request_id": pending["request_id"]})
        await eventually(lambda rid=pending["request_id"]: _decided(hybrid, rid), timeout=30)
    boxed, planned = await blackbox.result(), await hybrid.result()

    document, annotations = archived(blob_dir, blackbox)
    assert document["output"] == boxed["output"] and document["conversations"] == {}
    assert set(annotations["specialist_results"]) == {"budget", "analysis"}
    assert annotations["final_answer"] == boxed["output"] and annotations["customer_id"] == "C9"

    document, annotations = archived(blob_dir, hybrid)
    assert set(document["conversations"]) == {"planning", "execution"}
    assert annotations["plan"] == planned["output"]["plan"] and annotations["plan"]["consultations"]
    assert set(annotations["specialist_results"]) == {"budget", "analysis"}
    assert annotations["final_answer"] == planned["output"]["answer"] and annotations["status"] == "completed"


async def _decided(handle, request_id: str) -> bool:
    return all(p["request_id"] != request_id for p in (await handle.query("status"))["pending_approvals"])


async def test_a_failing_archive_does_not_fail_the_run(client, settings, fake_llm, tmp_path, monkeypatch):
    import service.activities as activities_module
    import worker as worker_module

    class Unwritable(LocalBlobStore):
        def list_objects(self, prefix: str) -> list[str]:
            raise ValueError("simulated: this store refuses every name")

    real = activities_module.ArchiveActivities
    monkeypatch.setattr(
        activities_module,
        "ArchiveActivities",
        lambda settings, store, *rest: real(settings, Unwritable(tmp_path), *rest),
    )
    fake_llm.push(Reply(text="done"))
    async with worker_module.build_worker(client, settings):
        handle = await client.start_workflow(
            "AgentLoopWorkflow", {"prompt": "hi"}, id=workflow_id("archive-fails"), task_queue=settings.task_queue
        )
        result = await handle.result()
    assert result["status"] == "completed" and result["output"] == "done"
    [marker] = local_activities(await handle.fetch_history())
    assert "simulated: this store refuses every name" in str(marker.marker_recorded_event_attributes.failure)


def test_archive_command_lists_by_annotation_and_shows_one(tmp_path):
    store = LocalBlobStore(tmp_path)
    for wid, answer, status in (
        ("run/a", "Refund for C123 sent", "completed"),
        ("run-b", "Nothing for C9", "completed"),
        ("run-c", None, "budget_exceeded"),
    ):
        name = archive_name(wid, "r1")
        store.put_object(name, json.dumps({"workflow_id": wid, "output": answer, "archived_at": "2026"}).encode())
        Annotator(store).write(name, {"final_answer": answer, "status": status, "customer_id": "C123"})

    def archive(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "archives", *args],
            cwd=ROOT,
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/bin", "BLOB_STORE_DIR": str(tmp_path)},
            timeout=60,
        )

    listed = archive("list", "--where", "final_answer~c123")
    assert listed.returncode == 0 and listed.stdout.splitlines() == ["run/a\tr1\tcompleted\tC123"]
    listed = archive("list", "--where", "status=completed", "--json")
    assert sorted(json.loads(line)["workflow_id"] for line in listed.stdout.splitlines()) == ["run-b", "run/a"]
    shown = archive("show", "run/a")
    assert shown.returncode == 0 and json.loads(shown.stdout)["output"] == "Refund for C123 sent"
    assert archive("show", "nope").returncode == 1
    bad = archive("list", "--where", "final_answer")
    assert bad.returncode == 2 and "FIELD=VALUE" in bad.stderr
