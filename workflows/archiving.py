"""Archive on completion: the one call every agent workflow makes just before it returns its result.

`archive_run` is a *local* activity on purpose: its input (output, conversations) goes from workflow
memory straight to the store and never into the event history (a local activity records only its
result), and it costs no extra server round trip. It is behind `workflow.patched` so histories of
runs recorded before it existed replay unchanged.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError

from workflows.common import failure_detail

with workflow.unsafe.imports_passed_through():
    from archives.activity import ArchiveActivities
    from archives.models import ArchiveReceipt, ArchiveRequest
    from models.conversation import Conversation
    from models.run import AgentRunResult

ARCHIVE_PATCH = "archive-on-completion"
ARCHIVE_TIMEOUT = timedelta(minutes=2)
ARCHIVE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30), maximum_attempts=6
)


async def archive_on_completion(
    result: AgentRunResult,
    *,
    customer_id: str | None,
    plan: Any = None,
    specialist_results: Any = None,
    final_answer: Any = None,
    conversations: dict[str, Conversation] | None = None,
    blob_keys: list[str] | None = None,
) -> ArchiveReceipt | None:
    """Archive the finished run; a failed archive is logged and the run still returns its result.

    The result is the product's contract and the work it reports is done; an archive is a record of
    it. Failing a completed run because a bucket was unreachable would tell the caller the work
    failed, so after its retries the failure stays visible in the history and the worker log instead.
    """
    if not workflow.patched(ARCHIVE_PATCH):
        return None
    info = workflow.info()
    request = ArchiveRequest(
        workflow_id=info.workflow_id,
        first_run_id=info.first_execution_run_id,
        run_id=info.run_id,
        workflow_type=info.workflow_type,
        status=result.status.value,
        output=result.output,
        usage=result.usage.model_dump(mode="json"),
        steps=result.steps,
        trace_id=result.trace_id,
        annotations={
            "plan": plan,
            "specialist_results": specialist_results,
            "final_answer": final_answer,
            "customer_id": customer_id,
            "status": result.status.value,
        },
        conversations=conversations or {},
        blob_keys=blob_keys or [],
    )
    try:
        return await workflow.execute_local_activity_method(
            ArchiveActivities.archive_run,
            request,
            start_to_close_timeout=ARCHIVE_TIMEOUT,
            retry_policy=ARCHIVE_RETRY,
            summary="archive_run",
        )
    # A local activity's failure may arrive as its cause itself (e.g. a non-retryable ApplicationError).
    except (ActivityError, ApplicationError, TimeoutError) as exc:
        detail = failure_detail(exc) if isinstance(exc, ActivityError) else str(exc)
        workflow.logger.warning("archive of run %s failed: %s", info.workflow_id, detail)
        return None
