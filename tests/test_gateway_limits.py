"""The gateway's limits over real sockets (uvicorn on 127.0.0.1, configured as `python -m gateway` does, and the dev
server): bodies over GATEWAY_MAX_BODY_BYTES answer 413 without being read, JSON nested too deep answers 422,
a request whose headers or body trickle in is cut at GATEWAY_READ_TIMEOUT_SECONDS, and connections beyond
GATEWAY_MAX_CONNECTIONS answer 503.

The raw clients use asyncio streams: the gateway runs on this test's event loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
import urllib.parse

import pytest

from config.settings import Settings
from devstack.dev_server import free_port
from devstack.fake_anthropic import Reply
from tests.conftest import workflow_id
from tests.gateway_support import WebhookSink, auth, running_gateway, with_gateway, write_tokens
from tests.helpers import eventually, pending_approvals

MIB = 1024 * 1024
READ_TIMEOUT = 1


@pytest.fixture
async def gateway(client, settings, tmp_path):
    """A gateway with a read deadline of 1 s and at most 8 connections (the rest as configured by default)."""
    gw = with_gateway(settings, free_port())
    limits = dataclasses.replace(gw.gateway, read_timeout_seconds=READ_TIMEOUT, max_connections=8)
    async with running_gateway(client, dataclasses.replace(gw, gateway=limits), write_tokens(tmp_path / "t.toml")):
        yield gw.gateway.port


def head(method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def read_response(reader: asyncio.StreamReader, timeout: float) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names) and body of one response with a Content-Length."""
    raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
    status_line, *lines = raw.decode().split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
    body = await asyncio.wait_for(reader.readexactly(int(headers.get("content-length", "0"))), timeout)
    return int(status_line.split()[1]), headers, body


async def closed_by_server(reader: asyncio.StreamReader, timeout: float) -> bool:
    """Whether the server closes the connection within `timeout` (EOF or a reset; anything else it sends is read)."""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not await asyncio.wait_for(reader.read(65536), deadline - time.monotonic()):
                return True
    except ConnectionError:
        return True
    except TimeoutError:
        return False
    return False


async def trickle(writer: asyncio.StreamWriter, data: bytes, every: float) -> int:
    """Send `data` one byte at a time, every `every` seconds, until it is sent or the connection fails; bytes sent."""
    for sent in range(len(data)):
        try:
            writer.write(data[sent : sent + 1])
            await writer.drain()
        except ConnectionError:
            return sent
        await asyncio.sleep(every)
    return len(data)


# --- bodies -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "who"),
    [
        ("/v1/runs", "alice"),
        ("/v1/runs", None),  # refused for its size before the token is even looked at
        ("/v1/runs/some-run/approvals/req-1", "bob"),
        ("/approve/any-link", None),  # the approval page's form
    ],
)
async def test_a_declared_150_mb_body_is_refused_at_once_and_never_read(gateway, path, who):
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway)
    headers = {**(auth(who) if who else {}), "Content-Type": "application/json", "Content-Length": str(150 * MIB)}
    writer.write(head("POST", path, headers) + b'{"workflow": "')
    sending = asyncio.create_task(trickle(writer, b"x" * 10_000, every=0.01))  # the rest, slowly
    started = time.monotonic()
    try:
        status, response_headers, body = await read_response(reader, timeout=3)
        assert status == 413 and time.monotonic() - started < 1, body
        assert response_headers["connection"] == "close"
        assert b"\n" not in body and "over the limit of 1048576 bytes" in json.loads(body)["detail"]
        assert json.loads(body)["field"] == "body"
        assert await closed_by_server(reader, 2)  # and it reads no more of it
    finally:
        sending.cancel()
        writer.close()


class _Answer(asyncio.Protocol):
    """Collects one response as the bytes arrive: a reset that follows the response (the server closed with the
    request's body unread) cannot hide it, as it can behind a `StreamReader`, which raises before its buffer."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.data = bytearray()
        self.lost = False
        self.response: asyncio.Future[tuple[int, dict[str, str], bytes]] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.data += data
        raw, found, rest = bytes(self.data).partition(b"\r\n\r\n")
        if not found or self.response.done():
            return
        status_line, *lines = raw.decode().split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
        if len(rest) >= int(headers.get("content-length", "0")):
            self.response.set_result((int(status_line.split()[1]), headers, rest))

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.response.done():
            self.response.set_exception(ConnectionError(f"closed before a whole response: {bytes(self.data)[:200]!r}"))


async def post_chunked(port: int, path: str, headers: dict[str, str], body: bytes) -> tuple[int, dict, bytes, int]:
    """POST `body` in 64 KiB chunks (no Content-Length), reading the answer meanwhile and stopping when it comes:
    status, headers, body of the answer, and how many bytes had been sent by then."""
    _, answer = await asyncio.get_running_loop().create_connection(_Answer, "127.0.0.1", port)
    assert answer.transport is not None
    answer.transport.write(head("POST", path, {**headers, "Transfer-Encoding": "chunked"}))
    sent = 0
    try:
        while not answer.response.done() and not answer.lost and sent < len(body):
            part = body[sent : sent + 65536]
            answer.transport.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
            sent += len(part)
            while answer.transport.get_write_buffer_size() > 65536 and not answer.lost:
                await asyncio.sleep(0.005)  # as `drain` would: the server reads at its pace
            await asyncio.sleep(0.005)  # lets the answer be read as soon as it comes
        if not answer.response.done() and not answer.lost:
            answer.transport.write(b"0\r\n\r\n")
        status, response_headers, response = await asyncio.wait_for(answer.response, 20)
    finally:
        answer.transport.close()
    return status, response_headers, response, sent


async def test_a_chunked_body_is_counted_and_cut_past_the_limit(gateway):
    """No Content-Length: the body is counted as it streams and refused once past 1 MiB, not read to its end."""
    headers = {**auth("alice"), "Content-Type": "application/json"}
    status, response_headers, body, sent = await post_chunked(gateway, "/v1/runs", headers, b"x" * (16 * MIB))
    assert status == 413, body
    assert response_headers["connection"] == "close" and "over the limit" in json.loads(body)["detail"]
    assert sent < 8 * MIB, sent  # answered soon after the first MiB, not after the 16 the client meant to send


async def test_deeply_nested_json_is_422_naming_the_body(gateway):
    async def post(raw: bytes) -> tuple[int, dict]:
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway)
        headers = {**auth("alice"), "Content-Type": "application/json", "Content-Length": str(len(raw))}
        writer.write(head("POST", "/v1/runs", headers) + raw)
        status, _, body = await read_response(reader, timeout=10)
        writer.close()
        return status, json.loads(body)

    deep = 100_000
    status, problem = await post(b"[" * deep + b"]" * deep)  # used to raise RecursionError: a 500
    assert status == 422 and problem["field"] == "body", problem
    assert problem["detail"] == "body: JSON nested deeper than 64 levels"
    nested: dict = {"x": 1}
    for _ in range(64):
        nested = {"x": nested}
    status, problem = await post(json.dumps({"workflow": "AgentLoopWorkflow", "input": nested}).encode())
    assert status == 422 and problem["detail"] == "body: JSON nested deeper than 64 levels", problem


# --- slow and idle connections ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent_at_once", "trickled"),
    [
        (b"", b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"),  # the request line and headers, a byte at a time
        (
            head("POST", "/v1/runs", {**auth("alice"), "Content-Type": "application/json", "Content-Length": "40"}),
            b'{"workflow": "AgentLoopWorkflow", "in":}',  # the body, a byte at a time
        ),
        (b"", b""),  # nothing at all
    ],
    ids=["headers", "body", "idle"],
)
async def test_a_request_that_trickles_in_is_cut_at_the_read_deadline(gateway, sent_at_once, trickled):
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway)
    started = time.monotonic()
    writer.write(sent_at_once)
    meant = trickled * 10  # far more than 1 s of bytes at 10 a second
    sending = asyncio.create_task(trickle(writer, meant, every=0.1))
    try:
        assert await closed_by_server(reader, 5)
        cut_after = time.monotonic() - started
        assert READ_TIMEOUT - 0.1 < cut_after < READ_TIMEOUT + 1.5, cut_after
        sent = await asyncio.wait_for(sending, 5)  # its next writes fail: the connection is gone
        assert sent < len(meant) or not meant  # cut while it was still sending
    finally:
        sending.cancel()
        writer.close()


async def test_a_request_read_in_time_is_served_and_the_connection_stays_usable(gateway):
    """The deadline is per request: a keep-alive connection gets a fresh one after each response."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway)
    for _ in range(2):
        writer.write(head("GET", "/v1/approvals", auth("bob")))
        status, _, _ = await read_response(reader, timeout=10)
        assert status == 200
        await asyncio.sleep(READ_TIMEOUT * 0.7)  # together longer than one deadline
    writer.close()


async def test_connections_beyond_the_cap_answer_503(gateway):
    idle = [await asyncio.open_connection("127.0.0.1", gateway) for _ in range(8)]
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway)
    writer.write(head("GET", "/v1/approvals", auth("bob")))
    status, _, _ = await read_response(reader, timeout=5)
    assert status == 503
    for _, w in idle:
        w.close()
    writer.close()

    async def served() -> bool:
        r, w = await asyncio.open_connection("127.0.0.1", gateway)
        w.write(head("GET", "/v1/approvals", auth("bob")))
        answer = (await read_response(r, timeout=5))[0]
        w.close()
        return answer == 200

    await eventually(served, 5)


# --- the approval page's form, streamed ---------------------------------------------------------------------------


async def test_the_approval_form_is_cut_past_the_limit_and_decides_nothing(client, settings, fake_llm, tmp_path):
    """A chunked form POST to a working link (a browser would send a length; this client does not) is refused at
    1 MiB, and the request stays pending."""
    from worker import build_worker

    with WebhookSink() as sink:
        gw = with_gateway(settings, free_port(), webhook_url=sink.url)
        tokens = write_tokens(tmp_path / "tokens.toml")
        async with build_worker(client, gw), running_gateway(client, gw, tokens):
            fake_llm.push(Reply(tool_calls=[("write_note", {"title": "t", "body": "b"})]), Reply(text="done"))
            handle = await client.start_workflow(
                "AgentLoopWorkflow",
                {"prompt": "save it", "approval": {"approvers": ["alice"]}},
                id=workflow_id("gw-form-limit"),
                task_queue=gw.task_queue,
            )
            [notice] = await eventually(lambda: list(sink.delivered.values()), 20)
            path = urllib.parse.urlsplit(notice["links"][0]["url"]).path
            form = b"decision=approve&comment=" + b"x" * (4 * MIB)
            headers = {"Content-Type": "application/x-www-form-urlencoded"}
            status, _, body, sent = await post_chunked(gw.gateway.port, path, headers, form)
            assert status == 413 and "over the limit" in json.loads(body)["detail"], body
            assert sent < 3 * MIB, sent
            [still] = await pending_approvals(handle)
            assert still["request_id"] == notice["request_id"]
            await handle.cancel()


# --- the settings reach uvicorn -----------------------------------------------------------------------------------


def test_the_limits_are_settings_with_defaults():
    from gateway.__main__ import uvicorn_config
    from gateway.protocol import ReadDeadlineProtocol

    defaults = Settings.from_env({}).gateway
    assert (defaults.max_body_bytes, defaults.max_header_bytes, defaults.read_timeout_seconds) == (MIB, 16384, 10)
    assert (defaults.keep_alive_seconds, defaults.max_connections) == (5, 512)
    env = {
        "GATEWAY_MAX_BODY_BYTES": "2048",
        "GATEWAY_MAX_HEADER_BYTES": "8192",
        "GATEWAY_READ_TIMEOUT_SECONDS": "3",
        "GATEWAY_KEEP_ALIVE_SECONDS": "2",
        "GATEWAY_MAX_CONNECTIONS": "64",
    }
    gateway = Settings.from_env(env).gateway
    config = uvicorn_config(object(), gateway, "warning")  # type: ignore[arg-type]
    assert (config.h11_max_incomplete_event_size, config.timeout_keep_alive, config.limit_concurrency) == (8192, 2, 64)
    assert isinstance(config.http, type) and issubclass(config.http, ReadDeadlineProtocol)
    assert config.http.read_timeout == 3 and gateway.max_body_bytes == 2048
    from models.errors import ConfigError

    with pytest.raises(ConfigError, match="GATEWAY_MAX_BODY_BYTES must be at least 1024"):
        Settings.from_env({"GATEWAY_MAX_BODY_BYTES": "10"})
