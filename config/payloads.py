"""Payload settings: offload threshold and encryption keys, parsed and checked once (payloads/ applies them).

Workers, starters, the demo and the codec server must agree on all of it: a payload encrypted or
offloaded by one process is decoded by another, so they need the same keys and the same blob store
(a shared directory or the same S3 bucket).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field

from models.errors import ConfigError

DEFAULT_OFFLOAD_BYTES = 256 * 1024
MAX_OFFLOAD_BYTES = 2 * 1024 * 1024
"""Temporal rejects payloads over 2 MB, so a higher threshold would let some through to fail there."""


def _key(name: str, raw: str) -> bytes:
    """Base64 (standard or URL-safe) of exactly 32 bytes; the message never repeats the value."""
    text = raw.strip().replace("-", "+").replace("_", "/")  # accept the URL-safe alphabet too
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(
            f"{name} must be base64 of 32 random bytes (e.g. `openssl rand -base64 32`); it is not valid base64"
        ) from None
    if len(key) != 32:
        raise ConfigError(f"{name} must be base64 of 32 bytes (AES-256); it decodes to {len(key)} bytes")
    return key


def key_fingerprint(key: bytes) -> str:
    """A key id derived from the key itself, so rotation works without naming keys (reveals nothing usable)."""
    return "k-" + hashlib.sha256(b"payload-key-id:" + key).hexdigest()[:12]


def _old_keys(raw: str) -> dict[str, bytes]:
    keys: dict[str, bytes] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        key_id, sep, encoded = item.partition(":")
        if not sep or not key_id:
            raise ConfigError("PAYLOAD_DECRYPTION_KEYS must be a comma-separated list of key-id:base64-key")
        keys[key_id] = _key(f"PAYLOAD_DECRYPTION_KEYS ({key_id})", encoded)
    return keys


@dataclass(frozen=True)
class PayloadSettings:
    """How payloads are encoded; `repr` never shows keys."""

    offload_bytes: int = DEFAULT_OFFLOAD_BYTES
    """Payloads larger than this go to the blob store (0: never)."""
    key_id: str | None = None
    """Id of the key new payloads are encrypted with; None: encryption off."""
    keys: dict[str, bytes] = field(default_factory=dict, repr=False)
    """Every key this process can decrypt with, by id (the current one and retired ones)."""


def read_payload_settings(env: Mapping[str, str]) -> PayloadSettings:
    """PAYLOAD_OFFLOAD_BYTES, PAYLOAD_ENCRYPTION_KEY(_ID), PAYLOAD_DECRYPTION_KEYS; ConfigError names a bad one."""
    raw = env.get("PAYLOAD_OFFLOAD_BYTES") or ""
    try:
        offload = int(raw) if raw else PayloadSettings.offload_bytes
    except ValueError:
        raise ConfigError(f"PAYLOAD_OFFLOAD_BYTES must be an integer, got {raw!r}") from None
    if not 0 <= offload <= MAX_OFFLOAD_BYTES:
        raise ConfigError(f"PAYLOAD_OFFLOAD_BYTES must be between 0 (off) and {MAX_OFFLOAD_BYTES}, got {offload}")
    keys = _old_keys(env.get("PAYLOAD_DECRYPTION_KEYS") or "")
    key_id = None
    if env.get("PAYLOAD_ENCRYPTION_KEY"):
        current = _key("PAYLOAD_ENCRYPTION_KEY", env["PAYLOAD_ENCRYPTION_KEY"])
        key_id = env.get("PAYLOAD_ENCRYPTION_KEY_ID") or key_fingerprint(current)
        if key_id in keys and keys[key_id] != current:
            raise ConfigError(f"PAYLOAD_DECRYPTION_KEYS has a different key under the current key id {key_id!r}")
        keys[key_id] = current
    elif env.get("PAYLOAD_ENCRYPTION_KEY_ID"):
        raise ConfigError("PAYLOAD_ENCRYPTION_KEY_ID is set but PAYLOAD_ENCRYPTION_KEY is not")
    return PayloadSettings(offload_bytes=offload, key_id=key_id, keys=keys)
