"""Conversation by reference without a server: chains in the blob store, truncation, summaries, carry, settings."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.testing import ActivityEnvironment

from activities.conversation_store import INLINE_OUTPUT_CHARS, ConversationStore
from activities.llm import LlmActivities
from activities.providers.anthropic_provider import AnthropicProvider
from activities.summarise import SUMMARY_HEADING, SUMMARY_INSTRUCTIONS, split_point
from config.settings import Settings
from devstack.fake_anthropic import Reply
from models.conversation import Conversation, ToolCall, ToolOutcome, assistant_message
from models.errors import ConfigError
from models.history import HistoryLimits
from models.llm import LlmRequest
from models.run import Budget
from payloads.blobs import LocalBlobStore, S3BlobStore
from tests.helpers import resolver_for
from tools.catalog import REGISTRY
from workflows.approvals import ApprovalBook
from workflows.carry import LoopState, RunCarry
from workflows.ledger import RunLedger

NOW = datetime(2026, 11, 23, tzinfo=UTC)


async def grow(store: ConversationStore, rounds: int, output: str = "x" * 5000) -> Conversation:
    """A by-reference conversation after `rounds` tool rounds, stored the way call_llm and run_tool store it."""
    conversation = Conversation.start("read the log", by_reference=True)
    for i in range(rounds):
        call = ToolCall(id=f"t{i}", name="search_notes", arguments={"query": f"entry {i}:"})
        conversation.adopt(await store.append(conversation, [assistant_message("", [call])]))
        kept, ref = await store.offload_output(f"{i}:{output}")
        conversation.add_tool_results(
            [ToolOutcome(tool_call_id=call.id, name=call.name, content=kept, content_ref=ref)]
        )
    return conversation


async def test_chain_reads_back_in_order_from_a_cold_store(tmp_path):
    store = ConversationStore(LocalBlobStore(tmp_path), tool_output_max_chars=100)
    conversation = await grow(store, 3)
    assert conversation.length == 7 and len(conversation.messages) == 1  # the last tool results are not stored yet
    cold = ConversationStore(LocalBlobStore(tmp_path), tool_output_max_chars=100)  # another worker, empty cache
    messages = await cold.messages(conversation)
    assert [m.role for m in messages] == ["user", "assistant", "user", "assistant", "user", "assistant", "user"]
    assert messages == await store.messages(conversation)


class CountingBlobs(LocalBlobStore):
    """A local blob store that counts its reads."""

    reads = 0

    def get(self, key: str) -> bytes:
        self.reads += 1
        return super().get(key)


async def test_the_conversation_cache_is_bounded_in_bytes_and_keeps_the_newest(tmp_path):
    """A worker with many runs waiting keeps only as many stored bytes of their conversations as its bound: the
    oldest runs' nodes are read again from the blob store, the newest from memory."""
    blobs = CountingBlobs(tmp_path)
    store = ConversationStore(blobs, tool_output_max_chars=100, cache_bytes=3_000)
    runs = []
    for n in range(40):
        conversation = Conversation.start(f"read log {n}", by_reference=True)
        conversation.adopt(await store.append(conversation, [assistant_message(f"log {n} is fine", [])]))
        runs.append(conversation)
    blobs.reads = 0
    await store.messages(runs[-1])
    assert blobs.reads == 0  # the newest run's chain is still in memory
    await store.messages(runs[0])
    assert blobs.reads == 1  # the oldest's was pushed out: read back, and it reads back whole
    assert [m.role for m in await store.messages(runs[0])] == ["user", "assistant"]


async def test_large_outputs_are_stored_whole_and_shown_truncated(tmp_path):
    blobs = LocalBlobStore(tmp_path)
    store = ConversationStore(blobs, tool_output_max_chars=100)
    small, no_ref = await store.offload_output("1200")
    assert (small, no_ref) == ("1200", None)
    kept, ref = await store.offload_output("y" * 20_000)
    assert ref is not None and blobs.get(ref) == b"y" * 20_000 and len(kept) < INLINE_OUTPUT_CHARS
    shown = await store.for_model(await grow(store, 2))
    [result] = shown.messages[-1].content
    assert (
        result.content.startswith("1:xxx")
        and "[output truncated: first 100 of 5002 characters shown]" in result.content
    )
    assert result.content_ref is None  # the provider gets plain content


async def test_same_messages_after_same_head_get_the_same_key(tmp_path):
    store = ConversationStore(LocalBlobStore(tmp_path), tool_output_max_chars=100)
    conversation = Conversation.start("hi", by_reference=True)
    reply = assistant_message("hello", [])
    assert await store.append(conversation, [reply]) == await store.append(conversation, [reply])  # a retried call_llm


def test_summary_keeps_the_prompt_and_starts_the_kept_part_at_an_assistant_turn():
    messages = [assistant_message("a", [])] * 12
    messages = [Conversation.start("p").messages[0], *messages]
    assert split_point(messages, 4) == 9
    assert split_point(messages[:5], 4) == 0  # nothing worth condensing


async def test_summarise_task_replaces_old_turns_and_keeps_originals(tmp_path, settings, fake_llm):
    fake_llm.push(Reply(text="Read entries 0 to 5."))
    blobs = LocalBlobStore(tmp_path)
    store = ConversationStore(blobs, tool_output_max_chars=100)
    conversation = await grow(store, 6)
    before = await store.messages(conversation)
    llm = LlmActivities(settings, resolver_for(REGISTRY), {"anthropic": AnthropicProvider(settings.anthropic)}, store)
    response = await ActivityEnvironment().run(
        llm.call_llm, LlmRequest(agent="assistant", conversation=conversation, max_tokens=500, task="summarise")
    )
    [sent] = fake_llm.requests
    assert sent.body["system"] == SUMMARY_INSTRUCTIONS and "tools" not in sent.body
    assert response.summarised == len(before) - 4 and response.stored is not None
    conversation.adopt(response.stored)
    after = await store.messages(conversation)
    assert after[0].content[0].text == "read the log"
    assert after[0].content[1].text == f"{SUMMARY_HEADING}\nRead entries 0 to 5."
    assert after[1:] == before[-4:] and after[1].role == "assistant"
    node = json.loads(blobs.get(response.stored.head))
    original = Conversation(by_reference=True, head=node["summary_of"], stored=len(before))
    assert await store.messages(original) == before


def test_carry_stays_small_and_approval_ids_go_on():
    ledger = RunLedger(budget=Budget(), started_at=NOW)
    for i in range(500):
        ledger.record_tool(
            ToolCall(id=f"t{i}", name="calculator", arguments={"expression": "1 + " * 40}),
            ToolOutcome(tool_call_id="t", name="c", content="z" * 500),
        )
    book = ApprovalBook()
    for _ in range(3):
        book.open(kind="tool_call", summary="s", proposal={}, approvers=[], now=NOW, timeout=timedelta(days=1))
        book.expire(book.pending()[0].request_id, NOW)
    carry = RunCarry(
        trace_id="0" * 32,
        generation=2,
        limits=HistoryLimits(),
        ledger=ledger,
        loop=LoopState(conversation=Conversation(by_reference=True, head="sha256:" + "0" * 64, stored=1000)),
        approvals=book.for_next_generation(),
    )
    assert len(carry.model_dump_json()) < 20_000
    resumed = RunCarry.model_validate_json(carry.model_dump_json())
    request = resumed.approvals.open(
        kind="tool_call", summary="s", proposal={}, approvers=[], now=NOW, timeout=timedelta(days=1)
    )
    assert request.request_id == "req-4"


def test_history_settings_from_the_environment():
    assert Settings.from_env({}).history == HistoryLimits(offload=True, max_events=2000, context_summary_tokens=100_000)
    off = Settings.from_env({"HISTORY_OFFLOAD": "false", "HISTORY_MAX_EVENTS": "500", "CONTEXT_SUMMARY_TOKENS": "0"})
    assert off.history == HistoryLimits(offload=False, max_events=500, context_summary_tokens=0)
    assert not off.history.continues_as_new and not off.history.summarises
    with pytest.raises(ConfigError, match="HISTORY_OFFLOAD must be true or false"):
        Settings.from_env({"HISTORY_OFFLOAD": "maybe"})
    with pytest.raises(ConfigError, match="HISTORY_MAX_EVENTS must be at least 100"):
        Settings.from_env({"HISTORY_MAX_EVENTS": "5"})
    assert Settings.from_env({"TOOL_OUTPUT_MAX_CHARS": "2000"}).tool_output_max_chars == 2000


class FakeS3:
    """The four calls S3BlobStore makes, kept in a dict: enough to run the conversation store on the S3 backend."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], bytes] = {}

    def put_object(self, Bucket, Key, Body, **_):
        self.objects[(Bucket, Key)] = Body

    def get_object(self, Bucket, Key):
        if (Bucket, Key) not in self.objects:
            error = Exception("NoSuchKey")
            error.response = {"Error": {"Code": "NoSuchKey"}}
            raise error

        class Body:
            def __init__(self, data):
                self.data = data

            def read(self):
                return self.data

        return {"Body": Body(self.objects[(Bucket, Key)])}


async def test_conversation_chain_on_the_s3_backend():
    s3 = FakeS3()
    store = ConversationStore(S3BlobStore("agents", "runs/", client=s3), tool_output_max_chars=100)
    conversation = await grow(store, 2)
    assert all(bucket == "agents" and key.startswith("runs/blobs/") for bucket, key in s3.objects)
    cold = ConversationStore(S3BlobStore("agents", "runs", client=s3), tool_output_max_chars=100)
    assert await cold.messages(conversation) == await store.messages(conversation)
