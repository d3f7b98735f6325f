"""The blob store's local backend: content addressing, idempotent writes, named objects, clear errors."""

from __future__ import annotations

import pytest

from config.payloads import PayloadSettings
from config.settings import Settings
from models.errors import BlobNotFound
from payloads.blobs import LocalBlobStore, S3BlobStore, blob_store, digest_key


def test_same_bytes_same_key_and_one_file(tmp_path):
    store = LocalBlobStore(tmp_path)
    key = store.put(b"conversation")
    assert key == digest_key(b"conversation") and key.startswith("sha256:")
    assert store.put(b"conversation") == key
    assert store.get(key) == b"conversation"
    assert len([p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]) == 1


def test_missing_and_malformed_keys_are_named(tmp_path):
    store = LocalBlobStore(tmp_path)
    with pytest.raises(BlobNotFound, match="not found"):
        store.get(digest_key(b"never stored"))
    with pytest.raises(ValueError, match="not a blob key"):
        store.get("../../etc/passwd")


def test_named_objects_list_by_prefix_and_refuse_escapes(tmp_path):
    store = LocalBlobStore(tmp_path)
    store.put_object("archives/run-1.json", b"{}")
    store.put_object("archives/run-2.json", b"{}")
    store.put_object("other/x", b"")
    assert store.list_objects("archives/") == ["archives/run-1.json", "archives/run-2.json"]
    store.put_object("archives/a/b/run-3.json", b"{}")
    assert store.list_objects("archives/run-2") == ["archives/run-2.json"]
    assert store.list_objects("archives/a/") == ["archives/a/b/run-3.json"]
    assert store.list_objects("archives/a/b/run-3.json") == ["archives/a/b/run-3.json"]
    assert store.list_objects("missing/folder/x") == []
    assert store.list_objects("") == [
        "archives/a/b/run-3.json",
        "archives/run-1.json",
        "archives/run-2.json",
        "other/x",
    ]
    assert store.get_object("archives/run-2.json") == b"{}"
    with pytest.raises(ValueError, match="relative path"):
        store.put_object("../escape", b"")


def test_backend_chosen_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    assert isinstance(
        blob_store(Settings.from_env({"BLOB_STORE_DIR": str(tmp_path)}).blobs, PayloadSettings()), LocalBlobStore
    )
    s3 = blob_store(
        Settings.from_env({"BLOB_STORE_S3_BUCKET": "b", "BLOB_STORE_S3_PREFIX": "/runs/"}).blobs, PayloadSettings()
    )
    assert isinstance(s3, S3BlobStore) and s3.bucket == "b" and s3.prefix == "runs/"


def test_lru_keeps_the_most_recent_within_its_weight():
    from payloads.lru import Lru

    cache: Lru[str, bytes] = Lru(10, weight=len)
    cache.put("a", b"1234")
    cache.put("b", b"5678")
    assert cache.get("a") == b"1234"  # now the most recent
    cache.put("c", b"90ab")  # 12 bytes > 10: the least recent ("b") goes
    assert cache.get("b") is None and cache.get("a") == b"1234" and cache.get("c") == b"90ab"
    cache.put("huge", b"x" * 11)  # heavier than the whole cache: not kept, nothing evicted
    assert cache.get("huge") is None and cache.get("a") is not None


def test_lru_drops_what_was_not_used_for_its_idle_bound_and_frees_its_weight():
    import time

    from payloads.lru import Lru, drop_idle_everywhere

    cache: Lru[str, bytes] = Lru(10, weight=len, idle_seconds=0.2)
    cache.put("waiting", b"1234")
    cache.put("active", b"5678")
    for _ in range(3):  # "active" is used within its bound, "waiting" is not
        time.sleep(0.1)
        assert cache.get("active") == b"5678"
    drop_idle_everywhere()  # what the worker's periodic release calls, with nothing else happening
    assert len(cache) == 1 and cache.get("waiting") is None and cache.get("active") == b"5678"
    cache.put("new", b"90ab")  # the dropped entry's weight was given back: room for 4 more bytes
    assert cache.get("active") == b"5678" and cache.get("new") == b"90ab"
    time.sleep(0.25)
    assert cache.get("new") is None and len(cache) == 0  # dropped at the next access too
