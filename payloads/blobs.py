"""One small interface over where bytes live: a local directory (default) or an S3-compatible bucket.

Blobs are content-addressed: the key of some bytes is `sha256:<hex>` of those bytes, so a write is
idempotent (a retried activity stores nothing new) and a reference read back during replay always
names the same bytes. Named objects (`put_object`) are for archives that people look up by name.
With PAYLOAD_ENCRYPTION_KEY set, `blob_store` wraps the backend in a sealing store
(payloads/sealed.py): every blob and object is AES-GCM ciphertext, addressed by a keyed `hmac:<hex>`.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

from config.payloads import PayloadSettings
from config.sections import BlobSettings
from models.errors import BlobNotFound, ConfigError

DIGEST_PREFIX = "sha256:"
HMAC_PREFIX = "hmac:"
"""Keys of sealed blobs: HMAC-SHA256 of the plaintext under a key derived from the encryption key."""
PROBE_PREFIX = "probes/"


class BlobStore(Protocol):
    """Where offloaded bytes live. Implementations are synchronous; async callers use `asyncio.to_thread`."""

    def put(self, data: bytes) -> str:
        """Store `data`; returns its key `sha256:<hex>`. Storing the same bytes twice is a no-op."""
        ...

    def get(self, key: str) -> bytes:
        """The bytes stored under `key`; raises BlobNotFound."""
        ...

    def put_object(self, name: str, data: bytes, metadata: Mapping[str, str] | None = None) -> str:
        """Store `data` under a chosen `name` (e.g. `archives/<workflow id>.json`); returns its URI."""
        ...

    def get_object(self, name: str) -> bytes:
        """The bytes of a named object; raises BlobNotFound."""
        ...

    def list_objects(self, prefix: str) -> list[str]:
        """Names of the named objects starting with `prefix`."""
        ...

    def delete_object(self, name: str) -> None:
        """Remove a named object (missing is fine)."""
        ...

    @property
    def location(self) -> str:
        """Where the store is, for messages: a directory or `s3://bucket/prefix`."""
        ...


def digest_key(data: bytes) -> str:
    """The content address of `data`."""
    return DIGEST_PREFIX + hashlib.sha256(data).hexdigest()


def _check_key(key: str) -> str:
    """The file or object name of a key: its hex for `sha256:` keys, `h-<hex>` for sealed `hmac:` keys."""
    prefix = HMAC_PREFIX if key.startswith(HMAC_PREFIX) else DIGEST_PREFIX
    hexpart = key.removeprefix(prefix)
    if not key.startswith(prefix) or len(hexpart) != 64 or any(c not in "0123456789abcdef" for c in hexpart):
        raise ValueError(f"not a blob key (expected 'sha256:' or 'hmac:' and 64 hex digits): {key[:80]!r}")
    return hexpart if prefix == DIGEST_PREFIX else "h-" + hexpart


def _check_name(name: str) -> str:
    parts = name.split("/")
    if not name or name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"object name must be a relative path without '.' or '..' parts: {name!r}")
    return name


class LocalBlobStore:
    """Blobs as files under one directory: `blobs/ab/cdef...`, named objects under `objects/`."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    @property
    def location(self) -> str:
        """The directory, absolute."""
        return str(self.root.absolute())

    def _blob_path(self, key: str) -> Path:
        name = _check_key(key)
        return self.root / "blobs" / name[:2] / name[2:]

    def _write_atomically(self, path: Path, data: bytes) -> None:
        # Write-then-rename: a reader never sees half a blob, even if this worker dies mid-write.
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def put(self, data: bytes, key: str | None = None) -> str:
        """Store `data` by content (or under `key`, a sealing store's address of its plaintext); returns the key."""
        key = key or digest_key(data)
        path = self._blob_path(key)
        if not path.exists():
            self._write_atomically(path, data)
        return key

    def get(self, key: str) -> bytes:
        """The bytes under `key`."""
        try:
            return self._blob_path(key).read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(f"blob {key} not found under {self.root}") from None

    def put_object(self, name: str, data: bytes, metadata: Mapping[str, str] | None = None) -> str:
        """Store a named object (metadata is kept by the S3 backend only)."""
        path = self.root / "objects" / _check_name(name)
        self._write_atomically(path, data)
        return path.resolve().as_uri()

    def get_object(self, name: str) -> bytes:
        """The bytes of a named object."""
        try:
            return (self.root / "objects" / _check_name(name)).read_bytes()
        except FileNotFoundError:
            raise BlobNotFound(f"object {name!r} not found under {self.root}") from None

    def list_objects(self, prefix: str) -> list[str]:
        """Names of named objects starting with `prefix`, sorted."""
        base = self.root / "objects"
        # Walk only the prefix's folder: the archive writer asks for one name per run, and walking every archive
        # ever written made each run's archive cost grow with the store (half a loaded worker's CPU at 1,000 runs).
        folder = prefix.rpartition("/")[0]
        start = base / folder if folder and ".." not in folder.split("/") else base
        if not start.is_dir():
            return []
        names = (
            p.relative_to(base).as_posix() for p in start.rglob("*") if p.is_file() and not p.name.startswith(".tmp-")
        )
        return sorted(n for n in names if n.startswith(prefix))

    def delete_object(self, name: str) -> None:
        """Remove a named object."""
        (self.root / "objects" / _check_name(name)).unlink(missing_ok=True)


class S3BlobStore:
    """Blobs in an S3-compatible bucket under `prefix` (boto3 reads credentials and AWS_ENDPOINT_URL itself)."""

    def __init__(self, bucket: str, prefix: str = "", client: Any = None) -> None:
        if client is None:
            import boto3  # only workers configured for S3 need boto3 loaded

            client = boto3.client("s3")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self.client = client

    @property
    def location(self) -> str:
        """`s3://bucket/prefix`."""
        return f"s3://{self.bucket}/{self.prefix}"

    def _blob_name(self, key: str) -> str:
        return f"{self.prefix}blobs/{_check_key(key)}"

    def _missing(self, exc: Exception) -> bool:
        code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
        return code in ("404", "NoSuchKey", "NotFound")

    def put(self, data: bytes, key: str | None = None) -> str:
        """Store `data` by content (or under `key`, a sealing store's address of its plaintext); returns the key."""
        key = key or digest_key(data)
        self.client.put_object(Bucket=self.bucket, Key=self._blob_name(key), Body=data)
        return key

    def get(self, key: str) -> bytes:
        """The bytes under `key`."""
        try:
            data: bytes = self.client.get_object(Bucket=self.bucket, Key=self._blob_name(key))["Body"].read()
            return data
        except Exception as exc:
            if self._missing(exc):
                raise BlobNotFound(f"blob {key} not found in s3://{self.bucket}/{self.prefix}") from None
            raise

    def put_object(self, name: str, data: bytes, metadata: Mapping[str, str] | None = None) -> str:
        """Store a named object with optional user metadata."""
        full = self.prefix + _check_name(name)
        self.client.put_object(Bucket=self.bucket, Key=full, Body=data, Metadata=dict(metadata or {}))
        return f"s3://{self.bucket}/{full}"

    def get_object(self, name: str) -> bytes:
        """The bytes of a named object."""
        try:
            data: bytes = self.client.get_object(Bucket=self.bucket, Key=self.prefix + _check_name(name))["Body"].read()
            return data
        except Exception as exc:
            if self._missing(exc):
                raise BlobNotFound(f"object {name!r} not found in s3://{self.bucket}/{self.prefix}") from None
            raise

    def list_objects(self, prefix: str) -> list[str]:
        """Names of named objects starting with `prefix`, sorted."""
        names: list[str] = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + prefix
        ):
            names += [item["Key"][len(self.prefix) :] for item in page.get("Contents", [])]
        return sorted(names)

    def delete_object(self, name: str) -> None:
        """Remove a named object."""
        self.client.delete_object(Bucket=self.bucket, Key=self.prefix + _check_name(name))


def blob_store(settings: BlobSettings, sealing: PayloadSettings) -> BlobStore:
    """S3 when a bucket is named (`BLOB_STORE_S3_BUCKET`, `BLOB_STORE_S3_PREFIX`); otherwise the directory `BLOB_STORE_DIR`.

    Sealed with the payload keys (`sealing`, PAYLOAD_ENCRYPTION_KEY and retired keys) whenever any are set,
    so every writer (conversations, tool outputs, claim checks, archives, agent specs) gets encryption at rest.
    """
    from payloads.sealed import SealedBlobStore  # sealed.py builds on this module's protocol and keys

    store = S3BlobStore(settings.s3_bucket, settings.s3_prefix) if settings.s3_bucket else LocalBlobStore(settings.dir)
    return SealedBlobStore(store, sealing.key_id, sealing.keys) if sealing.keys else store


def check_blob_store(store: BlobStore) -> None:
    """Write, read back and delete a probe object; ConfigError naming the store when any step fails.

    A worker that cannot use its store fails every pattern-B step after a paid model call, so it is
    better not to start at all.
    """
    name = f"{PROBE_PREFIX}{os.getpid()}-{os.urandom(6).hex()}"
    probe = b"blob store probe " + os.urandom(8).hex().encode()
    try:
        store.put_object(name, probe)
        if store.get_object(name) != probe:
            raise OSError("the probe object read back differs from what was written")
        store.delete_object(name)
    except Exception as exc:
        raise ConfigError(
            f"blob store {store.location} is not writable and readable by this process "
            f"({type(exc).__name__}: {exc}); set BLOB_STORE_DIR to a writable directory or BLOB_STORE_S3_BUCKET "
            "to a bucket these credentials may read and write"
        ) from None
