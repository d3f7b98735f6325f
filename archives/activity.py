"""The `archive_run` activity: a finished run's self-contained archive, written once, with its annotations."""

from __future__ import annotations

from temporalio import activity
from temporalio.converter import PayloadCodec
from temporalio.exceptions import ApplicationError

from activities.conversation_store import ConversationStore
from archives.annotations import Annotator
from archives.models import ArchiveReceipt, ArchiveRequest
from archives.store import archive_name, write_archive
from config.settings import Settings
from models.conversation import Conversation, ToolResultBlock
from payloads.blobs import BlobStore


class ArchiveActivities:
    """Writes archives into the blob store; `codec` decodes offloaded payloads so archives embed them readable."""

    def __init__(
        self,
        settings: Settings,
        store: BlobStore,
        codec: PayloadCodec | None = None,
        context: ConversationStore | None = None,
    ) -> None:
        self._settings = settings
        self._store = store
        self._codec = codec
        self._context = context
        self._annotator = Annotator(store, settings.archive_s3_annotations)  # type: ignore[arg-type]

    @activity.defn(name="archive_run")
    async def archive_run(self, request: ArchiveRequest) -> ArchiveReceipt:
        """Idempotent: an archive that exists is left as it is; only missing annotations are added."""
        if not self._settings.archive_runs:
            return ArchiveReceipt(name=archive_name(request.workflow_id, request.first_run_id))
        try:
            name, how, written = await write_archive(
                self._store, self._annotator, self._codec, await self._inline(request)
            )
        except ValueError as exc:  # an unusable name: retrying cannot help
            raise ApplicationError(f"cannot archive: {exc}", type="ArchiveInvalid", non_retryable=True) from None
        activity.logger.info("archive %s %s (annotations: %s)", name, "written" if written else "already there", how)
        return ArchiveReceipt(name=name, uri=self._uri(name), written=written, annotations=how)

    async def _inline(self, request: ArchiveRequest) -> ArchiveRequest:
        """Conversations kept by reference, read back whole, and their stored tool outputs named for embedding."""
        if self._context is None:
            return request
        conversations, keys = {}, list(request.blob_keys)
        for role, conversation in request.conversations.items():
            messages = await self._context.messages(conversation) if conversation.head else conversation.messages
            conversations[role] = Conversation(messages=messages)
            keys += [
                b.content_ref for m in messages for b in m.content if isinstance(b, ToolResultBlock) and b.content_ref
            ]
        return request.model_copy(update={"conversations": conversations, "blob_keys": keys})

    def _uri(self, name: str) -> str:
        bucket = getattr(self._store, "bucket", None)
        if bucket is not None:
            return f"s3://{bucket}/{getattr(self._store, 'prefix', '')}{name}"
        return f"{getattr(self._store, 'root', '.')}/objects/{name}"
