"""The payload codec and data converter every process builds from its settings.

Workers, starters, the demo and the codec server must agree on the keys and the blob store: a payload
encrypted or offloaded by one process is decoded by another (config/payloads.py says what each setting means).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter, PayloadCodec

from config.payloads import PayloadSettings
from config.settings import Settings
from payloads.blobs import BlobStore, blob_store
from payloads.codec import AesGcmCodec, ClaimCheckCodec, CodecChain
from payloads.failures import EncodedFittedFailures, FittedFailures


def build_codec(settings: PayloadSettings, store: BlobStore) -> CodecChain | None:
    """Encryption first, then the claim check, so offloaded blobs are ciphertext too; None when both are off."""
    codecs: list[PayloadCodec] = []
    if settings.key_id is not None:
        codecs.append(AesGcmCodec(settings.key_id, settings.keys))
    elif settings.keys:  # only retired keys: decrypt old payloads, write new ones in the clear
        codecs.append(_DecryptOnly(settings.keys))
    if settings.offload_bytes:
        codecs.append(ClaimCheckCodec(store, settings.offload_bytes))
    return CodecChain(codecs) if codecs else None


class _DecryptOnly(AesGcmCodec):
    """Encryption switched off but old encrypted payloads still readable."""

    def __init__(self, keys: Mapping[str, bytes]) -> None:
        super().__init__(next(iter(keys)), keys)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        """Payloads as they are: new ones are written in the clear."""
        return list(payloads)


def payload_codec(settings: Settings) -> CodecChain | None:
    """The codec `settings` configure (PAYLOAD_*), over the blob store they name (BLOB_STORE_*)."""
    return build_codec(settings.payloads, blob_store(settings.blobs, settings.payloads))


def data_converter(settings: Settings) -> DataConverter:
    """Pydantic JSON payloads, then the configured codec: what clients, workers and replayers share.

    With encryption on, failure messages and stack traces go through the codec too
    (payloads/failures.py): an exception's text often quotes the data it failed on, and history would
    otherwise keep it in the clear. Without a key they stay plain, so the CLI and UI show them as they are
    (an encoded failure in history is decoded by any converter, so switching the key on or off is safe).
    """
    encrypting = settings.payloads.key_id is not None
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=payload_codec(settings),
        failure_converter_class=EncodedFittedFailures if encrypting else FittedFailures,
    )
