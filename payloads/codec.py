"""Payload codecs: claim check (big payloads go to the blob store) and AES-GCM encryption.

Temporal refuses payloads over 2 MB and keeps every payload in the run's history forever, so a
payload above a threshold is stored in the blob store and replaced by a small claim-check
payload naming its content address. With encryption on, payloads are encrypted first and the
claim check stores the *ciphertext*: history and the blob store both hold only encrypted bytes.

    encode: payload -> encrypt (optional) -> claim check (if big)
    decode: claim check resolved -> decrypt (optional) -> payload

The encodings are our own (`binary/claim-check`, `binary/encrypted`) so that a process without
this codec fails loudly ("unknown encoding") instead of handing a reference over as the value.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.converter import PayloadCodec

from models.errors import PayloadCodecError
from payloads.blobs import DIGEST_PREFIX, BlobStore, digest_key
from payloads.lru import Lru

ENCODING = "encoding"
CLAIM_CHECK_ENCODING = b"binary/claim-check"
ENCRYPTED_ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12  # 96 bits: what AES-GCM is specified for


class ClaimCheckCodec(PayloadCodec):
    """Payloads larger than `threshold` bytes go to `store`; history keeps `{"key", "size"}` only.

    Blobs are content-addressed, so a small in-process cache can never serve stale bytes; it saves
    re-reading a big result the worker itself just wrote, and on every replay of the run.
    """

    def __init__(self, store: BlobStore, threshold: int, cache_bytes: int = 64 * 1024 * 1024) -> None:
        self.store = store
        self.threshold = threshold
        self._cache: Lru[str, bytes] = Lru(cache_bytes, weight=len)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Replace each payload over the threshold by a claim check."""
        return [await self._check_in(p) if p.ByteSize() > self.threshold else p for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Resolve claim checks from the store; other payloads pass through."""
        return [await self._check_out(p) if p.metadata.get(ENCODING) == CLAIM_CHECK_ENCODING else p for p in payloads]

    async def _check_in(self, payload: Payload) -> Payload:
        data = payload.SerializeToString()
        key = await asyncio.to_thread(self.store.put, data)
        self._cache.put(key, data)
        ticket = json.dumps({"key": key, "size": len(data)}).encode()
        return Payload(metadata={ENCODING: CLAIM_CHECK_ENCODING}, data=ticket)

    async def _check_out(self, payload: Payload) -> Payload:
        try:
            key = json.loads(payload.data)["key"]
        except (ValueError, KeyError, TypeError):
            raise PayloadCodecError('malformed claim-check payload (expected {"key": "sha256:..."})') from None
        data = self._cache.get(key)
        if data is None:
            try:
                data = await asyncio.to_thread(self.store.get, key)
            except KeyError as exc:
                raise PayloadCodecError(
                    f"{exc.args[0] if exc.args else exc}; every process that decodes payloads needs "
                    "the same blob store (BLOB_STORE_DIR or BLOB_STORE_S3_BUCKET)"
                ) from None
            # A corrupted or swapped blob must never become a workflow's input (a sealing store checks its
            # keyed `hmac:` addresses itself).
            if key.startswith(DIGEST_PREFIX) and digest_key(data) != key:
                raise PayloadCodecError(f"blob {key} does not match its content address")
            self._cache.put(key, data)
        return Payload.FromString(data)


class AesGcmCodec(PayloadCodec):
    """AES-256-GCM over the whole serialized payload (metadata included), with a fresh 96-bit nonce each time.

    The key id travels in the payload's metadata (and is bound as associated data), so keys can
    rotate: new payloads use the current key, older ones decrypt with any key still in `keys`.
    """

    def __init__(self, key_id: str, keys: Mapping[str, bytes]) -> None:
        if key_id not in keys:
            raise ValueError(f"the current key id {key_id!r} has no key")
        self.key_id = key_id
        self._ciphers = {kid: AESGCM(key) for kid, key in keys.items()}

    def __repr__(self) -> str:  # never show key material, even by accident in a log line
        return f"AesGcmCodec(key_id={self.key_id!r}, keys={sorted(self._ciphers)})"

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Encrypt every payload with the current key."""
        cipher = self._ciphers[self.key_id]
        out = []
        for p in payloads:
            nonce = os.urandom(NONCE_BYTES)
            sealed = cipher.encrypt(nonce, p.SerializeToString(), self.key_id.encode())
            out.append(
                Payload(metadata={ENCODING: ENCRYPTED_ENCODING, KEY_ID: self.key_id.encode()}, data=nonce + sealed)
            )
        return out

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Decrypt encrypted payloads with the key their metadata names; others pass through."""
        return [self._open(p) if p.metadata.get(ENCODING) == ENCRYPTED_ENCODING else p for p in payloads]

    def _open(self, payload: Payload) -> Payload:
        key_id = payload.metadata.get(KEY_ID, b"").decode()
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise PayloadCodecError(
                f"payload encrypted with key id {key_id!r}, which this process does not have "
                "(PAYLOAD_ENCRYPTION_KEY_ID / PAYLOAD_DECRYPTION_KEYS)"
            )
        try:
            plain = cipher.decrypt(payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:], key_id.encode())
        except InvalidTag:
            raise PayloadCodecError(
                f"payload under key id {key_id!r} failed authentication (wrong key or tampered)"
            ) from None
        return Payload.FromString(plain)


class CodecChain(PayloadCodec):
    """Codecs applied in order on encode and in reverse order on decode."""

    def __init__(self, codecs: Sequence[PayloadCodec]) -> None:
        self.codecs = list(codecs)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Each codec's encode, first to last."""
        out = list(payloads)
        for codec in self.codecs:
            out = await codec.encode(out)
        return out

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Each codec's decode, last to first."""
        out = list(payloads)
        for codec in reversed(self.codecs):
            out = await codec.decode(out)
        return out
