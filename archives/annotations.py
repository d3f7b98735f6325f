"""Named annotations on an archive object: S3 object annotations where the bucket has them, a sidecar JSON otherwise.

S3-compatible servers that do not know `PutObjectAnnotation` do not always refuse it: some (moto 5.2
among them) ignore the `?annotation` subresource and store the annotation *as the object*, silently
replacing it. So support is never assumed from a successful call: a probe object is annotated once per
process and read back, and only an intact probe counts as support.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable
from typing import Any, Literal

from models.errors import BlobNotFound
from payloads.blobs import BlobStore, S3BlobStore

SIDECAR_SUFFIX = ".annotations.json"
MAX_ANNOTATION_BYTES = 1024 * 1024
"""S3's limit for one annotation's payload."""
PROBE_NAME = "archives/.annotation-probe"
_PROBE_BODY = b"annotation support probe (safe to delete)"

Mode = Literal["auto", "on", "off"]
log = logging.getLogger(__name__)


def sidecar_name(name: str) -> str:
    """`archives/x/run.json` -> `archives/x/run.annotations.json`."""
    return name.removesuffix(".json") + SIDECAR_SUFFIX


def annotation_bytes(value: Any) -> bytes:
    """JSON of `value`; over S3's 1 MiB limit, a marked head of it (the archive itself has the whole value)."""
    data = json.dumps(value, ensure_ascii=False, default=str).encode()
    if len(data) <= MAX_ANNOTATION_BYTES:
        return data
    head = data[: MAX_ANNOTATION_BYTES // 2].decode(errors="ignore")
    return json.dumps({"truncated": True, "bytes": len(data), "head": head}).encode()


class Annotator:
    """Writes and reads the named annotations of archive objects in one blob store."""

    def __init__(self, store: BlobStore, mode: Mode = "auto") -> None:
        self.store = store
        self.mode = mode
        self._supported: bool | None = None
        self._lock = threading.Lock()

    def s3_supported(self) -> bool:
        """Whether annotations go on the S3 object itself (probed once, unless `mode` says)."""
        if not isinstance(self.store, S3BlobStore) or self.mode == "off":
            return False
        if self.mode == "on":
            return True
        with self._lock:
            if self._supported is None:
                self._supported = self._probe(self.store)
                log.info(
                    "S3 object annotations %s in bucket %s",
                    "supported" if self._supported else "unsupported: using sidecars",
                    self.store.bucket,
                )
            return self._supported

    @staticmethod
    def _probe(store: S3BlobStore) -> bool:
        s3, key = store.client, store.prefix + PROBE_NAME
        if not hasattr(s3, "put_object_annotation"):  # botocore older than the annotation API
            return False
        from botocore.exceptions import ClientError

        s3.put_object(Bucket=store.bucket, Key=key, Body=_PROBE_BODY)
        try:
            s3.put_object_annotation(Bucket=store.bucket, Key=key, AnnotationName="probe", AnnotationPayload=b"1")
        except ClientError as exc:  # NotImplemented, MethodNotAllowed, AccessDenied...: any refusal means sidecars
            log.info("PutObjectAnnotation refused (%s)", exc.response.get("Error", {}).get("Code"))
            return False
        return bool(s3.get_object(Bucket=store.bucket, Key=key)["Body"].read() == _PROBE_BODY)

    def write(self, name: str, annotations: dict[str, Any]) -> Literal["s3", "sidecar"]:
        """Attach `annotations` to the object `name`, writing only what is not there yet (retries add nothing)."""
        if self.s3_supported():
            assert isinstance(self.store, S3BlobStore)
            s3, key = self.store.client, self.store.prefix + name
            present = set(self._s3_names(key))
            for label, value in annotations.items():
                if label not in present:
                    s3.put_object_annotation(
                        Bucket=self.store.bucket,
                        Key=key,
                        AnnotationName=label,
                        AnnotationPayload=annotation_bytes(value),
                    )
            return "s3"
        sidecar = sidecar_name(name)
        if sidecar not in self.store.list_objects(sidecar):
            body = {label: json.loads(annotation_bytes(value)) for label, value in annotations.items()}
            self.store.put_object(sidecar, json.dumps(body, ensure_ascii=False, indent=1).encode())
        return "sidecar"

    def read(self, name: str, labels: Iterable[str] | None = None) -> dict[str, Any]:
        """The annotations of `name` (only `labels`, when given): from its sidecar, else from S3."""
        wanted = set(labels) if labels is not None else None
        try:
            found = json.loads(self.store.get_object(sidecar_name(name)))
            return {k: v for k, v in found.items() if wanted is None or k in wanted}
        except BlobNotFound:
            pass
        if not self.s3_supported():
            return {}
        assert isinstance(self.store, S3BlobStore)
        s3, key = self.store.client, self.store.prefix + name
        out = {}
        for label in self._s3_names(key):
            if wanted is None or label in wanted:
                payload = s3.get_object_annotation(Bucket=self.store.bucket, Key=key, AnnotationName=label)[
                    "AnnotationPayload"
                ]
                out[label] = json.loads(payload.read())
        return out

    def _s3_names(self, key: str) -> list[str]:
        assert isinstance(self.store, S3BlobStore)
        names: list[str] = []
        token: dict[str, str] = {}
        while True:
            page = self.store.client.list_object_annotations(Bucket=self.store.bucket, Key=key, **token)
            names += [entry["AnnotationName"] for entry in page.get("Annotations", [])]
            if not page.get("NextContinuationToken"):
                return names
            token = {"ContinuationToken": page["NextContinuationToken"]}
