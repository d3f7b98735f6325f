"""The conversation kept by reference: message batches chained in the blob store, assembled for the model.

Each `call_llm` appends one node `{"prev": <key>, "length": n, "messages": [...]}` holding the messages
added since the previous call and the model's reply; the workflow keeps only the new node's key. Keys
are content addresses, so nodes never change: any worker may cache them, and a replay or a retry
always reads the same bytes. Large tool outputs are blobs of their own, named from their tool_result
block; the model is shown at most `tool_output_max_chars` of each.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from models.conversation import Conversation, Message, StoredConversation, ToolResultBlock
from payloads.blobs import BlobStore
from payloads.lru import Lru

NODE_FORMAT = 1
INLINE_OUTPUT_CHARS = 1000
"""Tool outputs up to this size stay in history as they are; larger ones are stored and previewed."""
PREVIEW_CHARS = 200
"""What history keeps of a stored output: enough for the run's record of work and the UI."""


CACHE_BYTES = 2 * 1024 * 1024
"""What a worker keeps of the conversations it read or wrote, counted in their stored (JSON) bytes; in memory
they take several times that. The working set is the active runs' newest nodes, so the bound is in bytes (8,192
nodes of any size before, growing with every run that waits)."""
CACHE_IDLE_SECONDS = 30.0
"""A node not read or written for this long leaves the cache: a run waiting for a person (or a slow model) reads
its conversation back from the blob store when it goes on, instead of keeping it in the worker's memory meanwhile.
Measured with tracemalloc, each waiting run's nodes held about 14 KiB of Python objects for 1-2 KiB of JSON.
The worker's periodic memory release (service/memory.py) drops idle nodes even when nothing else runs."""


@dataclass(frozen=True)
class _Node:
    prev: str | None
    length: int
    messages: tuple[Message, ...]
    size: int
    """Stored bytes: its weight in the cache."""


def truncate_for_model(text: str, max_chars: int) -> str:
    """The first `max_chars` characters and a note saying how much was left out."""
    if len(text) <= max_chars:
        return text
    return f"{text[:max_chars]}\n[output truncated: first {max_chars} of {len(text)} characters shown]"


class ConversationStore:
    """Reads and writes conversation chains and tool outputs; one per worker, shared by its activities."""

    def __init__(self, blobs: BlobStore, tool_output_max_chars: int, cache_bytes: int = CACHE_BYTES) -> None:
        self.blobs = blobs
        self.tool_output_max_chars = tool_output_max_chars
        self._nodes: Lru[str, _Node] = Lru(cache_bytes, weight=lambda node: node.size, idle_seconds=CACHE_IDLE_SECONDS)
        self._shown: Lru[str, str] = Lru(cache_bytes // 4, weight=len, idle_seconds=CACHE_IDLE_SECONDS)

    # -- reading ---------------------------------------------------------------------------------
    async def messages(self, conversation: Conversation) -> list[Message]:
        """Every message: the stored chain (if any), then the unstored tail."""
        return await asyncio.to_thread(self._messages, conversation)

    async def for_model(self, conversation: Conversation) -> Conversation:
        """The whole conversation inline, each tool output cut to what the model is shown."""
        return await asyncio.to_thread(lambda: self._for_model(self._messages(conversation)))

    def _messages(self, conversation: Conversation) -> list[Message]:
        batches: list[tuple[Message, ...]] = []
        key = conversation.head
        while key is not None:  # the cache usually holds all but the newest node
            node = self._node(key)
            batches.append(node.messages)
            key = node.prev
        return [m for batch in reversed(batches) for m in batch] + list(conversation.messages)

    def _node(self, key: str) -> _Node:
        node = self._nodes.get(key)
        if node is None:
            data = self.blobs.get(key)
            raw = json.loads(data)
            messages = tuple(Message.model_validate(m) for m in raw["messages"])
            node = _Node(raw["prev"], raw["length"], messages, len(data))
            self._nodes.put(key, node)
        return node

    def _for_model(self, messages: list[Message]) -> Conversation:
        shown = [
            Message(
                role=m.role, content=[self._shown_block(b) if isinstance(b, ToolResultBlock) else b for b in m.content]
            )
            if any(isinstance(b, ToolResultBlock) for b in m.content)
            else m
            for m in messages
        ]
        return Conversation(messages=shown)

    def _shown_block(self, block: ToolResultBlock) -> ToolResultBlock:
        if block.content_ref is None:
            content = truncate_for_model(block.content, self.tool_output_max_chars)
        else:
            cache_key = f"{block.content_ref}:{self.tool_output_max_chars}"
            cached = self._shown.get(cache_key)
            if cached is None:
                cached = truncate_for_model(self.blobs.get(block.content_ref).decode(), self.tool_output_max_chars)
                self._shown.put(cache_key, cached)
            content = cached
        return ToolResultBlock(tool_use_id=block.tool_use_id, content=content, is_error=block.is_error)

    # -- writing ---------------------------------------------------------------------------------
    async def append(self, conversation: Conversation, added: list[Message]) -> StoredConversation:
        """Store the unstored tail plus `added` as a node after the conversation's head."""
        messages = [*conversation.messages, *added]
        return await asyncio.to_thread(
            self._put_node, conversation.head, conversation.stored + len(messages), messages, None
        )

    async def restart(self, messages: list[Message], summary_of: str | None) -> StoredConversation:
        """A new chain holding `messages`; `summary_of` keeps the originals it condenses reachable."""
        return await asyncio.to_thread(self._put_node, None, len(messages), messages, summary_of)

    def _put_node(
        self, prev: str | None, length: int, messages: list[Message], summary_of: str | None
    ) -> StoredConversation:
        body: dict[str, Any] = {
            "format": NODE_FORMAT,
            "prev": prev,
            "length": length,
            "messages": [m.model_dump(mode="json") for m in messages],
        }
        if summary_of is not None:
            body["summary_of"] = summary_of
        data = json.dumps(body, sort_keys=True, separators=(",", ":")).encode()
        key = self.blobs.put(data)
        self._nodes.put(key, _Node(prev, length, tuple(messages), len(data)))
        return StoredConversation(head=key, length=length)

    async def offload_output(self, content: str) -> tuple[str, str | None]:
        """(what history keeps, blob key): a large output is stored whole and previewed, a small one kept as is."""
        if len(content) <= INLINE_OUTPUT_CHARS:
            return content, None
        key = await asyncio.to_thread(self.blobs.put, content.encode())
        preview = f"{content[:PREVIEW_CHARS]}... [{len(content)} characters; the whole output is in the blob store]"
        return preview, key
