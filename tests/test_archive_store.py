"""The archive activity against the stores: written once, offloaded items embedded, S3 annotations or sidecars.

A real S3 HTTP endpoint on 127.0.0.1 is moto's server. moto 5.2 has no annotation API: it stores an
annotation *as the object*, which is exactly what the probe in archives/annotations.py guards against.
The annotation calls themselves are checked against botocore's S3 model with a Stubber.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
from datetime import UTC, datetime
from urllib.parse import unquote

import boto3
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber
from temporalio.api.common.v1 import Payload
from temporalio.testing import ActivityEnvironment

from archives.activity import ArchiveActivities
from archives.annotations import _PROBE_BODY, PROBE_NAME, Annotator, sidecar_name
from archives.cli import main as _main
from archives.models import ANNOTATION_NAMES, ArchiveRequest
from archives.store import NAME_MAX, archive_name, segment, write_archive
from config.settings import Settings
from devstack.dev_server import free_port
from payloads.blobs import LocalBlobStore, S3BlobStore
from payloads.converter import build_codec

KEY = base64.b64encode(b"a" * 32).decode()
BUCKET = "run-archives"


def request(workflow_id: str = "wf/1", **extra) -> ArchiveRequest:
    fields = dict(
        workflow_id=workflow_id,
        first_run_id="run-1",
        run_id="run-2",
        workflow_type="AgentLoopWorkflow",
        status="completed",
        output="Refund for customer C123 sent.",
        annotations={"final_answer": "Refund for customer C123 sent.", "customer_id": "C123", "status": "completed"},
    )
    return ArchiveRequest(**{**fields, **extra})


async def test_archive_is_written_once_and_embeds_offloaded_items_decoded(tmp_path):
    store = LocalBlobStore(tmp_path)
    codec = build_codec(
        Settings.from_env({"PAYLOAD_ENCRYPTION_KEY": KEY, "PAYLOAD_OFFLOAD_BYTES": "64"}).payloads, store
    )
    [ticket] = await codec.encode(
        [Payload(metadata={"encoding": b"json/plain"}, data=json.dumps({"rows": ["x" * 100]}).encode())]
    )
    offloaded = json.loads(ticket.data)["key"]
    conversation_ref = store.put(b'{"messages": [{"role": "user", "content": "hi"}]}')
    missing = "sha256:" + "0" * 64
    activities = ArchiveActivities(Settings(), store, codec)

    receipt = await ActivityEnvironment().run(
        activities.archive_run, request(blob_keys=[offloaded, conversation_ref, missing])
    )
    assert receipt.written and receipt.annotations == "sidecar" and receipt.name == "archives/wf%2F1/run-1.json"
    body = store.get_object(receipt.name)
    items = json.loads(body)["items"]
    assert items[offloaded] == {"payload_encoding": "json/plain", "content": {"rows": ["x" * 100]}}  # decrypted
    assert items[conversation_ref] == {"json": {"messages": [{"role": "user", "content": "hi"}]}}
    assert items[missing] == {"missing": True}
    sidecar = json.loads(store.get_object(sidecar_name(receipt.name)))
    assert set(sidecar) == set(ANNOTATION_NAMES) and sidecar["customer_id"] == "C123"

    again = await ActivityEnvironment().run(activities.archive_run, request(output="something else"))
    assert not again.written and store.get_object(receipt.name) == body

    off = ArchiveActivities(Settings(archive_runs=False), store, codec)
    skipped = await ActivityEnvironment().run(off.archive_run, request("wf-2"))
    assert skipped.annotations == "off" and not skipped.written and store.list_objects("archives/wf-2") == []


def test_long_ids_get_stable_short_segments_and_short_ids_keep_theirs():
    # Ids that fit keep exactly the names they always had, so archives written before are still found.
    assert archive_name("wf/1", "run-1") == "archives/wf%2F1/run-1.json"
    assert segment("..") == "%2E%2E" and segment("é") == "%C3%A9" and segment("a" * NAME_MAX) == "a" * NAME_MAX
    # A longer one: its quoted head, '!', the SHA-256 of the whole id. Spelled out: a change would lose archives.
    assert segment("run/" + "x" * 300) == (
        "run%2F" + "x" * 184 + "!9f3fbe0cf7d961a8555c66e0992f95d50b09b16cd6f0696bc5529f1af124af88"
    )
    # Ids sharing a 400-character head (and the head itself) get distinct names, each of whole characters.
    shared = "order-" + "é" * 400
    names = [segment(shared + tail) for tail in ("", "a", "b", "é")]
    assert len(set(names)) == 4 and len({name.split("!")[0] for name in names}) == 1
    for text in (shared, "a" + shared, "ab" + shared, "x" * 1000):
        name = segment(text)
        head, digest = name.split("!")
        assert len(name.encode()) <= NAME_MAX and digest == hashlib.sha256(text.encode()).hexdigest()
        assert text.startswith(unquote(head, errors="strict")) and len(head) >= NAME_MAX - 65 - 5
    assert segment("a!b") == "a%21b"  # no full segment has the '!' of a shortened one
    # The longest names fit a file name (the sidecar's too) and an S3 key (1024 bytes).
    longest = archive_name("é" * 1000, "r" * 1000)
    assert len(sidecar_name(longest).rsplit("/", 1)[1].encode()) <= NAME_MAX and len(sidecar_name(longest)) < 600


LONG_IDS = {"300": "wf-" + "x" * 297, "1000-slashes": "tenant/" + "a/" * 496 + "z", "1000-utf8": "é" * 1000}


@pytest.mark.parametrize("workflow_id", LONG_IDS.values(), ids=LONG_IDS.keys())
async def test_an_archive_of_a_long_workflow_id_is_written_listed_and_shown(workflow_id, tmp_path, monkeypatch, capsys):
    store = LocalBlobStore(tmp_path)
    activities = ArchiveActivities(Settings(), store)
    twin = workflow_id + "-twin"  # the same long head: a name of its own all the same
    receipt = await ActivityEnvironment().run(activities.archive_run, request(workflow_id))
    await ActivityEnvironment().run(activities.archive_run, request(twin, output="the twin's"))
    assert receipt.written and receipt.annotations == "sidecar" and receipt.name == archive_name(workflow_id, "run-1")
    again = await ActivityEnvironment().run(activities.archive_run, request(workflow_id))
    assert not again.written  # found again under the same name

    monkeypatch.setenv("BLOB_STORE_DIR", str(tmp_path))
    assert _main(["show", workflow_id]) == 0
    assert json.loads(capsys.readouterr().out)["output"] == "Refund for customer C123 sent."
    assert _main(["show", twin, "--run", "run-1"]) == 0
    assert json.loads(capsys.readouterr().out)["output"] == "the twin's"
    assert _main(["show", workflow_id[:-1]]) == 1 and _main(["show", workflow_id, "--run", "run-2"]) == 1
    capsys.readouterr()
    assert _main(["list", "--where", "final_answer~c123", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert sorted(row["workflow_id"] for row in rows) == sorted([workflow_id, twin])  # whole ids, from the archives
    assert {row["first_run_id"] for row in rows} == {"run-1"}


@pytest.fixture
def moto_s3(monkeypatch):
    """moto's S3 server on 127.0.0.1, with a bucket; the environment points boto3 at it."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for name, value in {
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    yield s3
    server.stop()


async def test_on_a_real_s3_endpoint_without_annotations_the_archive_gets_a_sidecar(moto_s3, monkeypatch, capsys):
    store = S3BlobStore(BUCKET, "prod", client=moto_s3)
    annotator = Annotator(store)
    name, how, written = await write_archive(store, annotator, None, request())
    assert (how, written) == ("sidecar", True) and not annotator.s3_supported()
    # The archive itself is intact: the probe, not the archive, took moto's overwrite.
    assert json.loads(store.get_object(name))["output"] == "Refund for customer C123 sent."
    assert moto_s3.get_object(Bucket=BUCKET, Key=f"prod/{PROBE_NAME}")["Body"].read() != _PROBE_BODY
    assert annotator.read(name, ["final_answer"]) == {"final_answer": "Refund for customer C123 sent."}
    assert (await write_archive(store, annotator, None, request()))[2] is False

    monkeypatch.setenv("BLOB_STORE_S3_BUCKET", BUCKET)
    monkeypatch.setenv("BLOB_STORE_S3_PREFIX", "prod")
    assert _main(["list", "--where", "final_answer~c123", "--where", "status=completed"]) == 0
    assert capsys.readouterr().out.splitlines() == ["wf/1\trun-1\tcompleted\tC123"]
    assert _main(["show", "wf/1"]) == 0
    assert json.loads(capsys.readouterr().out)["first_run_id"] == "run-1"


async def test_a_long_workflow_id_on_s3_fits_its_key_and_metadata(moto_s3, monkeypatch, capsys):
    store = S3BlobStore(BUCKET, "prod", client=moto_s3)
    workflow_id = "tenant/" + "é" * 993  # quoted whole: 5,967 bytes, over S3's 2 KB of user metadata
    name, _, written = await write_archive(store, Annotator(store), None, request(workflow_id))
    assert written and len(f"prod/{sidecar_name(name)}".encode()) <= 1024  # S3's key limit
    head = moto_s3.head_object(Bucket=BUCKET, Key=f"prod/{name}")
    assert head["Metadata"]["workflow-id"] == segment(workflow_id)  # bounded by NAME_MAX
    monkeypatch.setenv("BLOB_STORE_S3_BUCKET", BUCKET)
    monkeypatch.setenv("BLOB_STORE_S3_PREFIX", "prod")
    assert _main(["show", workflow_id]) == 0
    assert json.loads(capsys.readouterr().out)["workflow_id"] == workflow_id


def body(data: bytes) -> StreamingBody:
    return StreamingBody(io.BytesIO(data), len(data))


def entry(name: str) -> dict:
    """One AnnotationEntry of a ListObjectAnnotations answer, with the fields botocore's model requires."""
    return {"AnnotationName": name, "LastModified": datetime(2026, 11, 23, tzinfo=UTC), "Size": 1}


def test_s3_annotations_where_the_bucket_supports_them():
    s3 = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    annotator = Annotator(S3BlobStore(BUCKET, client=s3))
    name = archive_name("wf-1", "run-1")
    labels = {"final_answer": "Refund for C123", "plan": {"summary": "refund"}, "status": "completed"}
    with Stubber(s3) as stub:
        # The probe: annotate a probe object, and find it intact afterwards.
        stub.add_response("put_object", {}, {"Bucket": BUCKET, "Key": PROBE_NAME, "Body": _PROBE_BODY})
        stub.add_response(
            "put_object_annotation",
            {},
            {"Bucket": BUCKET, "Key": PROBE_NAME, "AnnotationName": "probe", "AnnotationPayload": b"1"},
        )
        stub.add_response("get_object", {"Body": body(_PROBE_BODY)}, {"Bucket": BUCKET, "Key": PROBE_NAME})
        # Writing: only the annotations not there yet (a retry adds nothing).
        stub.add_response(
            "list_object_annotations", {"Annotations": [entry("status")]}, {"Bucket": BUCKET, "Key": name}
        )
        for label in ("final_answer", "plan"):
            stub.add_response(
                "put_object_annotation",
                {"AnnotationName": label},
                {
                    "Bucket": BUCKET,
                    "Key": name,
                    "AnnotationName": label,
                    "AnnotationPayload": json.dumps(labels[label]).encode(),
                },
            )
        assert annotator.write(name, labels) == "s3"
        # Reading back: no sidecar, so the object's own annotations.
        stub.add_client_error(
            "get_object",
            service_error_code="NoSuchKey",
            http_status_code=404,
            expected_params={"Bucket": BUCKET, "Key": sidecar_name(name)},
        )
        stub.add_response(
            "list_object_annotations", {"Annotations": [entry(n) for n in labels]}, {"Bucket": BUCKET, "Key": name}
        )
        for label in ("final_answer", "plan"):
            stub.add_response(
                "get_object_annotation",
                {"AnnotationPayload": body(json.dumps(labels[label]).encode())},
                {"Bucket": BUCKET, "Key": name, "AnnotationName": label},
            )
        assert annotator.read(name, ["final_answer", "plan"]) == {
            "final_answer": "Refund for C123",
            "plan": {"summary": "refund"},
        }
        stub.assert_no_pending_responses()


def test_a_bucket_that_refuses_annotations_gets_sidecars():
    s3 = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    annotator = Annotator(S3BlobStore(BUCKET, client=s3))
    with Stubber(s3) as stub:
        stub.add_response("put_object", {}, {"Bucket": BUCKET, "Key": PROBE_NAME, "Body": ANY})
        stub.add_client_error("put_object_annotation", service_error_code="NotImplemented", http_status_code=501)
        assert annotator.s3_supported() is False
        assert annotator.s3_supported() is False  # probed once per process
        stub.assert_no_pending_responses()
    assert Annotator(S3BlobStore(BUCKET, client=s3), "off").s3_supported() is False
    assert Annotator(LocalBlobStore("/nonexistent"), "on").s3_supported() is False
