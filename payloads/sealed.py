"""Encryption at rest for the blob store: every blob and named object sealed with the payload keys.

With PAYLOAD_ENCRYPTION_KEY set, `blob_store` wraps the directory or bucket in a `SealedBlobStore`, so
conversation nodes, tool outputs, summaries, claim-checked payloads, archives and pinned agent specs are
all AES-256-GCM ciphertext, under the same keys and rotation rules as history (config/payloads.py): new
blobs use the current key, old ones open with any key still configured, and with only retired keys set
new blobs are written in the clear while sealed ones stay readable.

Content addresses. A plain `sha256:` of the plaintext would let anyone who can list the store tell
that two runs stored the same conversation or tool output, and confirm a guessed plaintext by hashing
it. Sealed blobs are therefore addressed by `hmac:<HMAC-SHA256(address key, plaintext)>`, the address
key derived from the encryption key: still deterministic (a retried activity stores nothing new, and
workers cache by key), but meaningless without the key. An address over the ciphertext would not do:
a fresh nonce per write makes it differ every time, losing idempotency. The address key comes from the
key the blob is sealed with, so a rotation starts new addresses; old keys still verify old blobs.

Each sealed blob is `MAGIC | key-id length | key id | nonce | ciphertext+tag`, with the blob's key (or
`object:<name>`) as associated data: a blob moved to another address fails authentication.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from models.errors import PayloadCodecError
from payloads.blobs import DIGEST_PREFIX, HMAC_PREFIX, LocalBlobStore, S3BlobStore

MAGIC = b"\x00DAS1"
"""Starts every sealed blob; plaintext blobs (JSON, protobuf payloads) never start with a NUL byte."""
NONCE_BYTES = 12


def address_key(key: bytes) -> bytes:
    """The HMAC key of blob addresses, derived from (and revealing nothing about) an encryption key."""
    return hashlib.sha256(b"blob-address-key:" + key).digest()


class SealedBlobStore:
    """A BlobStore whose bytes at rest are AES-GCM sealed; callers put and get plaintext as before."""

    def __init__(self, inner: LocalBlobStore | S3BlobStore, key_id: str | None, keys: Mapping[str, bytes]) -> None:
        if key_id is not None and key_id not in keys:
            raise ValueError(f"the current key id {key_id!r} has no key")
        self.inner = inner
        self.key_id = key_id
        self._ciphers = {kid: AESGCM(key) for kid, key in keys.items()}
        self._address_keys = {kid: address_key(key) for kid, key in keys.items()}

    def __repr__(self) -> str:  # never show key material
        return f"SealedBlobStore({self.inner.location!r}, key_id={self.key_id!r}, keys={sorted(self._ciphers)})"

    @property
    def location(self) -> str:
        """The backend's directory or bucket."""
        return self.inner.location

    @property
    def root(self) -> object:
        """The backend's directory, where it has one (archive URIs)."""
        return getattr(self.inner, "root", None)

    @property
    def bucket(self) -> str | None:
        """The backend's bucket, where it has one (archive URIs)."""
        return getattr(self.inner, "bucket", None)

    @property
    def prefix(self) -> str:
        """The backend's key prefix."""
        return getattr(self.inner, "prefix", "")

    # -- sealing ---------------------------------------------------------------------------------------
    def _address(self, key_id: str, data: bytes) -> str:
        return HMAC_PREFIX + hmac.new(self._address_keys[key_id], data, hashlib.sha256).hexdigest()

    def _seal(self, data: bytes, context: str) -> bytes:
        assert self.key_id is not None
        kid = self.key_id.encode()
        nonce = os.urandom(NONCE_BYTES)
        header = MAGIC + bytes([len(kid)]) + kid
        return header + nonce + self._ciphers[self.key_id].encrypt(nonce, data, header + context.encode())

    def _open(self, blob: bytes, context: str) -> tuple[str | None, bytes]:
        """(key id, plaintext); blobs written before encryption was on come back as they are, with no key id."""
        if not blob.startswith(MAGIC):
            return None, blob
        size = blob[len(MAGIC)]
        end = len(MAGIC) + 1 + size
        key_id = blob[len(MAGIC) + 1 : end].decode()
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise PayloadCodecError(
                f"{context} in {self.location} is sealed with key id {key_id!r}, which this process does not have "
                "(PAYLOAD_ENCRYPTION_KEY_ID / PAYLOAD_DECRYPTION_KEYS)"
            )
        try:
            plain = cipher.decrypt(
                blob[end : end + NONCE_BYTES], blob[end + NONCE_BYTES :], blob[:end] + context.encode()
            )
        except InvalidTag:
            raise PayloadCodecError(
                f"{context} in {self.location} failed authentication (wrong key or tampered)"
            ) from None
        return key_id, plain

    # -- the BlobStore protocol --------------------------------------------------------------------------
    def put(self, data: bytes) -> str:
        """Seal and store `data`; its key is the keyed address of the plaintext (in the clear: `sha256:`)."""
        if self.key_id is None:  # only retired keys: new blobs in the clear, as history's payloads
            return self.inner.put(data)
        key = self._address(self.key_id, data)
        return self.inner.put(self._seal(data, key), key=key)

    def get(self, key: str) -> bytes:
        """The plaintext under `key`, authenticated against its address."""
        key_id, plain = self._open(self.inner.get(key), key)
        if key.startswith(HMAC_PREFIX):
            if key_id is None or not hmac.compare_digest(self._address(key_id, plain), key):
                raise PayloadCodecError(f"blob {key} does not match its content address")
        elif key.startswith(DIGEST_PREFIX) and key_id is not None:
            raise PayloadCodecError(f"blob {key} is sealed but has a plaintext address")
        return plain

    def put_object(self, name: str, data: bytes, metadata: Mapping[str, str] | None = None) -> str:
        """Seal and store a named object (names and metadata stay readable: keep content out of them)."""
        sealed = data if self.key_id is None else self._seal(data, f"object:{name}")
        return self.inner.put_object(name, sealed, metadata)

    def get_object(self, name: str) -> bytes:
        """The plaintext of a named object."""
        return self._open(self.inner.get_object(name), f"object:{name}")[1]

    def list_objects(self, prefix: str) -> list[str]:
        """Names of named objects starting with `prefix`."""
        return self.inner.list_objects(prefix)

    def delete_object(self, name: str) -> None:
        """Remove a named object."""
        self.inner.delete_object(name)
