"""The payload codec and the codec server without a Temporal server: offload, encryption, keys, HTTP protocol."""

from __future__ import annotations

import base64
import json
import urllib.request
from urllib.error import HTTPError

import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payload, Payloads

from config.settings import Settings
from models.errors import ConfigError, PayloadCodecError
from payloads.blobs import LocalBlobStore
from payloads.codec import CLAIM_CHECK_ENCODING, ENCRYPTED_ENCODING
from payloads.codec_server import CodecServer
from payloads.converter import build_codec, data_converter

KEY = base64.b64encode(b"k" * 32).decode()
OTHER_KEY = base64.b64encode(b"o" * 32).decode()
SECRET = "account 4711-0815 belongs to Ada"


def big_text(size: int) -> str:
    """`size` characters of text that do not compress to nothing (a realistic tool output)."""
    words = [f"row-{i}:{(i * 7919) % 100003}" for i in range(size // 8 + 1)]
    return " ".join(words)[:size]


def codec_for(tmp_path, **env: str):
    return build_codec(Settings.from_env(env).payloads, LocalBlobStore(tmp_path))


async def test_five_megabytes_become_a_claim_check_and_come_back(tmp_path):
    converter = data_converter(Settings.from_env({"BLOB_STORE_DIR": str(tmp_path)}))
    value = {"content": big_text(5 * 1024 * 1024)}
    [encoded] = await converter.encode([value])
    assert encoded.metadata["encoding"] == CLAIM_CHECK_ENCODING and encoded.ByteSize() < 200
    assert json.loads(encoded.data)["key"].startswith("sha256:")
    assert await converter.decode([encoded], [dict]) == [value]
    # A small payload stays inline, untouched.
    [small] = await converter.encode([{"content": "hi"}])
    assert small.metadata["encoding"] == b"json/plain"


async def test_encrypted_payloads_and_offloaded_blobs_hold_no_plaintext(tmp_path):
    codec = codec_for(tmp_path, PAYLOAD_ENCRYPTION_KEY=KEY, PAYLOAD_OFFLOAD_BYTES="1024")
    small = Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(SECRET).encode())
    large = Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(SECRET + big_text(4096)).encode())
    enc_small, enc_large = await codec.encode([small, large])
    assert enc_small.metadata["encoding"] == ENCRYPTED_ENCODING and SECRET.encode() not in enc_small.SerializeToString()
    assert enc_large.metadata["encoding"] == CLAIM_CHECK_ENCODING
    [blob] = [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
    assert b"4711" not in blob.read_bytes()  # the stored blob is ciphertext too
    assert await codec.decode([enc_small, enc_large]) == [small, large]
    # Same plaintext, fresh nonce: no two ciphertexts alike.
    again, _ = await codec.encode([small, large])
    assert again.data != enc_small.data


async def test_keys_rotate_and_wrong_or_missing_keys_are_named(tmp_path):
    old = codec_for(tmp_path, PAYLOAD_ENCRYPTION_KEY=KEY, PAYLOAD_ENCRYPTION_KEY_ID="2025")
    [sealed] = await old.encode([Payload(data=b"x")])
    assert sealed.metadata["encryption-key-id"] == b"2025"
    rotated = codec_for(
        tmp_path,
        PAYLOAD_ENCRYPTION_KEY=OTHER_KEY,
        PAYLOAD_ENCRYPTION_KEY_ID="2026",
        PAYLOAD_DECRYPTION_KEYS=f"2025:{KEY}",
    )
    assert await rotated.decode([sealed]) == [Payload(data=b"x")]
    assert (await rotated.encode([Payload(data=b"x")]))[0].metadata["encryption-key-id"] == b"2026"
    with pytest.raises(PayloadCodecError, match=r"key id '2025'.*does not have"):
        await codec_for(tmp_path, PAYLOAD_ENCRYPTION_KEY=OTHER_KEY).decode([sealed])
    with pytest.raises(PayloadCodecError, match="failed authentication"):
        await codec_for(tmp_path, PAYLOAD_ENCRYPTION_KEY=OTHER_KEY, PAYLOAD_ENCRYPTION_KEY_ID="2025").decode([sealed])
    # Encryption switched off: old payloads still decrypt, new ones are written in the clear.
    reader = codec_for(tmp_path, PAYLOAD_DECRYPTION_KEYS=f"2025:{KEY}", PAYLOAD_OFFLOAD_BYTES="0")
    assert await reader.decode([sealed]) == [Payload(data=b"x")]
    assert await reader.encode([Payload(data=b"x")]) == [Payload(data=b"x")]


async def test_a_claim_check_whose_blob_is_gone_or_corrupt_is_refused(tmp_path):
    codec = codec_for(tmp_path, PAYLOAD_OFFLOAD_BYTES="10")
    [ticket] = await codec.encode([Payload(data=b"a" * 100)])
    with pytest.raises(PayloadCodecError, match="same blob store"):
        await codec_for(tmp_path / "elsewhere", PAYLOAD_OFFLOAD_BYTES="10").decode([ticket])
    [blob] = [p for p in (tmp_path / "blobs").rglob("*") if p.is_file()]
    blob.write_bytes(b"tampered")
    with pytest.raises(PayloadCodecError, match="does not match"):
        await codec_for(tmp_path, PAYLOAD_OFFLOAD_BYTES="10").decode([ticket])


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"PAYLOAD_ENCRYPTION_KEY": base64.b64encode(b"short").decode()},
            "PAYLOAD_ENCRYPTION_KEY must be base64 of 32 bytes.*5 bytes",
        ),
        ({"PAYLOAD_ENCRYPTION_KEY": "not base64 !"}, "PAYLOAD_ENCRYPTION_KEY .*not valid base64"),
        ({"PAYLOAD_OFFLOAD_BYTES": "lots"}, "PAYLOAD_OFFLOAD_BYTES must be an integer"),
        ({"PAYLOAD_OFFLOAD_BYTES": str(3 * 1024 * 1024)}, "PAYLOAD_OFFLOAD_BYTES must be between"),
        ({"PAYLOAD_DECRYPTION_KEYS": KEY}, "PAYLOAD_DECRYPTION_KEYS must be"),
        ({"PAYLOAD_ENCRYPTION_KEY_ID": "x"}, "PAYLOAD_ENCRYPTION_KEY is not"),
    ],
)
def test_malformed_settings_name_the_variable_and_never_echo_keys(env, message):
    with pytest.raises(ConfigError, match=message) as failure:
        Settings.from_env(env)
    assert "not base64 !" not in str(failure.value)
    assert KEY not in repr(Settings.from_env({"PAYLOAD_ENCRYPTION_KEY": KEY}).payloads)


def post(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read()
    except HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def payloads_json(*payloads: Payload) -> bytes:
    return json.dumps(json_format.MessageToDict(Payloads(payloads=payloads))).encode()


async def test_codec_server_protocol_token_and_cors(tmp_path):
    codec = codec_for(tmp_path, PAYLOAD_ENCRYPTION_KEY=KEY)
    plain = Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(SECRET).encode())
    [sealed] = await codec.encode([plain])
    with CodecServer(codec, "tok-123", origins=("http://localhost:8233",)) as server:
        ok = {"Authorization": "Bearer tok-123", "X-Namespace": "default", "Origin": "http://localhost:8233"}
        status, headers, body = post(f"{server.url}/decode", payloads_json(sealed), ok)
        assert status == 200 and headers["Access-Control-Allow-Origin"] == "http://localhost:8233"
        decoded = json_format.Parse(body, Payloads())
        assert list(decoded.payloads) == [plain]
        # The UI cannot send headers: the token as the first path segment works too.
        status, _, body = post(f"{server.url}/tok-123/encode", payloads_json(plain))
        [reencoded] = json_format.Parse(body, Payloads()).payloads
        assert status == 200 and reencoded.metadata["encoding"] == ENCRYPTED_ENCODING
        assert post(f"{server.url}/decode", payloads_json(sealed))[0] == 401
        assert post(f"{server.url}/decode", payloads_json(sealed), {"Authorization": "Bearer nope"})[0] == 403
        assert post(f"{server.url}/nope/decode", payloads_json(sealed))[0] == 403
        assert post(f"{server.url}/tok-123/other", b"{}")[0] == 404
        assert post(f"{server.url}/decode", b"not json", ok)[0] == 400
        # A preflight from the UI's origin is answered without the token (browsers never send one there).
        preflight = urllib.request.Request(
            f"{server.url}/decode", method="OPTIONS", headers={"Origin": "http://localhost:8233"}
        )
        with urllib.request.urlopen(preflight, timeout=10) as response:
            assert response.status == 204 and "X-Namespace" in response.headers["Access-Control-Allow-Headers"]
        # A foreign origin gets no CORS grant.
        _, headers, _ = post(f"{server.url}/decode", payloads_json(sealed), {**ok, "Origin": "http://evil.example"})
        assert "Access-Control-Allow-Origin" not in headers


def test_codec_server_refuses_to_start_without_a_token():
    with pytest.raises(ConfigError, match="CODEC_SERVER_TOKEN"):
        CodecServer(None, "")
