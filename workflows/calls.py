"""Every activity a workflow calls, each through one small function here, with its options from one table.

Activities are called by their registered name (never renamed once shipped: running workflows replay
by name), so workflow code needs only the contracts in `models/`, never the activity code. Each
function turns the `ActivityError` that Temporal raises after the last attempt into the product's
typed error, in one place (`_failure`); an `ActivityError` caused by the run's cancellation is never
turned into one (`_unless_cancelled`): it propagates, and the run closes Canceled.
"""

from __future__ import annotations

from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, TimeoutError, is_cancelled_exception

from workflows import activity_options, patches, spend_wait
from workflows.activity_options import ActivityOptions
from workflows.fair_dispatch import activity_priority
from workflows.progress import progress_of_run

with workflow.unsafe.imports_passed_through():
    from archives.models import ArchiveReceipt, ArchiveRequest
    from models.agents import PinnedAgents, ResolveAgentsRequest
    from models.approval_notice import ApprovalNotice, ApprovalNoticeReceipt
    from models.blackbox import InvokeAgentRequest, InvokeAgentResult
    from models.budget import spend_in
    from models.conversation import ToolOutcome
    from models.errors import AgentRunFailed, AgentServiceError, InvalidInput, LlmCallFailed, SpendLimitReached
    from models.history import HistoryLimits
    from models.hybrid import NotificationReceipt, NotificationRequest
    from models.llm import LlmRequest, LlmResponse
    from models.progress import PREVIEW_CHARS
    from models.run import Usage
    from models.tooling import ToolInvocation

R = TypeVar("R")
SPEND_LIMIT_REACHED = "SpendLimitReached"
"""The failure type activities/spend_guard.py gives a refused reservation (the same string, kept apart from it:
workflow code imports no activity code)."""
BLACK_BOX_SPEND_WAIT_PATCH = "black-box-spend-wait"
"""Runs recorded before a black box refused under `on_limit = "wait"` waited (they ended `budget_exceeded`)."""
CANCELLATION_PATCH = "cancellation-closes-run"
"""Runs recorded before it turned a cancelled activity into a typed failure (or swallowed it); they replay so."""


class ToolCallFailed(AgentServiceError):
    """A tool call failed after all its attempts; the loop tells the model and goes on."""


class NotificationFailed(AgentServiceError):
    """`send_notification` failed after its attempts; the run's work is done, so this is reported, not fatal."""


class ArchiveFailed(AgentServiceError):
    """`archive_run` failed after its attempts; the run still returns its result."""


async def call_llm(request: LlmRequest, *, summary: str, where: str, task_queue: str | None = None) -> LlmResponse:
    """One inference; failure after its retries is `LlmCallFailed` naming `where` (e.g. `at step 3`).

    `task_queue`: the provider's own queue when the worker caps the fleet's rate (LLM_RATE_LIMITS). A call a
    spend limit refuses raises `SpendLimitReached`, or with `on_limit = "wait"` is made again after the reset.
    """
    while True:
        try:
            response = await _call_llm(request, summary=summary, where=where, task_queue=task_queue)
        except SpendLimitReached as exc:
            if exc.on_limit != "wait":
                raise
            await spend_wait.wait_for_reset(exc)
            continue
        if response.spend_limit is not None and (run := spend_wait.run_status()) is not None:
            run.show_spend_limit(response.spend_limit)
        return response


async def _call_llm(request: LlmRequest, *, summary: str, where: str, task_queue: str | None) -> LlmResponse:
    progress = progress_of_run()
    if progress.asks_activities:
        request = request.model_copy(update={"progress": True})
    progress.publish("llm_started", summary=summary, model=request.model, task=request.task)
    try:
        response = await _execute(activity_options.CALL_LLM, request, LlmResponse, summary, task_queue=task_queue)
    except ActivityError as exc:
        progress.publish("llm_finished", summary=summary, error=_failure(exc), usage=None)
        _unless_cancelled(exc)
        if (limit := _limit_reached(exc)) is not None:
            raise limit from None
        raise LlmCallFailed(f"call_llm failed {where}: {_failure(exc)}", spent=reported_spend(exc)) from exc
    progress.publish(
        "llm_finished",
        summary=summary,
        usage=response.usage.model_dump(mode="json"),
        stop_reason=response.stop_reason,
        tool_calls=[call.name for call in response.tool_calls],
    )
    return response


async def run_tool(invocation: ToolInvocation, options: ActivityOptions, *, summary: str) -> ToolOutcome:
    """One validated tool call; failure after its retries is `ToolCallFailed` with the attempts made."""
    progress = progress_of_run()
    tool = invocation.call.name
    progress.publish("tool_started", tool=tool, arguments=invocation.call.arguments, summary=summary)
    try:
        outcome = await _execute(options, invocation, ToolOutcome, summary)
    # A local activity's failure may arrive as its cause itself (a non-retryable ApplicationError, a timeout).
    except (ActivityError, ApplicationError, TimeoutError) as exc:
        if isinstance(exc, ActivityError):
            _unless_cancelled(exc)
        elif not options.local:
            raise
        policy = options.retry_policy
        attempts = (policy.maximum_attempts if policy else 0) or "unlimited"
        why = _failure(exc) if isinstance(exc, ActivityError) else str(exc)
        message = f"tool {tool} failed after {attempts} attempts: {why}"
        progress.publish("tool_finished", tool=tool, is_error=True, preview=message[:PREVIEW_CHARS])
        raise ToolCallFailed(message) from exc
    progress.publish("tool_finished", tool=tool, is_error=outcome.is_error, preview=outcome.content[:PREVIEW_CHARS])
    return outcome


async def invoke_black_box(
    request: InvokeAgentRequest, *, summary: str, where: str, task_queue: str | None = None
) -> InvokeAgentResult:
    """One whole agent run; failure after its retries is `AgentRunFailed` naming `where` (`task_queue`: as call_llm).

    A spend limit that refuses one of its model calls ends the run (its turns so far counted); with
    `on_limit = "wait"` the agent goes on after the reset from its last checkpoint: it is scheduled again under
    the same activity id, which is where its checkpoint is kept (activities/black_box/checkpoint.py).
    """
    if progress_of_run().asks_activities:
        request = request.model_copy(update={"progress": True})
    same_agent: str | None = None
    while True:
        try:
            return await _execute(
                activity_options.INVOKE_BLACK_BOX,
                request,
                InvokeAgentResult,
                summary,
                task_queue=task_queue,
                activity_id=same_agent,
            )
        except ActivityError as exc:
            _unless_cancelled(exc)
            limit = _limit_reached(exc)
            if limit is not None and limit.on_limit == "wait" and patches.patched(BLACK_BOX_SPEND_WAIT_PATCH):
                await spend_wait.wait_for_reset(limit)  # its spend so far is in its checkpoint: not counted here
                same_agent = exc.activity_id
                continue
            if limit is not None:
                raise limit from None
            raise AgentRunFailed(
                f"agent {request.agent} failed at {where}: {_failure(exc)}", spent=reported_spend(exc)
            ) from exc


async def send_notification(request: NotificationRequest, *, summary: str) -> NotificationReceipt:
    """One notification, deduplicated by its idempotency key; failure is `NotificationFailed`."""
    try:
        return await _execute(activity_options.SEND_NOTIFICATION, request, NotificationReceipt, summary)
    except ActivityError as exc:
        _unless_cancelled(exc)
        raise NotificationFailed(_failure(exc)) from exc


def notify_approval(notice: ApprovalNotice) -> None:
    """Announce an opened request without waiting for it: the durable wait starts at once, and a webhook
    that stays down after its retries costs only a warning (the request is still decidable every other way)."""
    handle = workflow.start_activity(
        activity_options.NOTIFY_APPROVAL.name,
        notice,
        result_type=ApprovalNoticeReceipt,
        start_to_close_timeout=activity_options.NOTIFY_APPROVAL.start_to_close_timeout,
        retry_policy=activity_options.NOTIFY_APPROVAL.retry_policy,
        summary=f"notify approvers of {notice.request_id}",
        priority=activity_priority(),
    )

    def _observe(done: Any) -> None:
        if not done.cancelled() and done.exception() is not None:
            workflow.logger.warning("approval notice for %s failed: %s", notice.request_id, done.exception())

    handle.add_done_callback(_observe)


async def archive_run(request: ArchiveRequest) -> ArchiveReceipt:
    """Write the run's archive (a local activity); failure is `ArchiveFailed`."""
    try:
        return await _execute(activity_options.ARCHIVE_RUN, request, ArchiveReceipt, f"archive_run: {request.status}")
    # A local activity's failure may arrive as its cause itself (e.g. a non-retryable ApplicationError).
    except (ActivityError, ApplicationError, TimeoutError) as exc:
        raise ArchiveFailed(_failure(exc) if isinstance(exc, ActivityError) else str(exc)) from exc


async def history_limits() -> HistoryLimits:
    """The worker's history settings (a local activity, so the answer is recorded and replays the same)."""
    return await _execute(
        activity_options.HISTORY_LIMITS, None, HistoryLimits, "history_limits: the worker's HISTORY_* settings"
    )


async def resolve_agents(request: ResolveAgentsRequest) -> PinnedAgents:
    """Pin the run's agents (a local activity); an agent the worker does not know fails the run as InvalidInput."""
    try:
        return await _execute(activity_options.RESOLVE_AGENTS, request, PinnedAgents, _pinning_summary(request))
    except (ActivityError, ApplicationError) as exc:
        cause = exc.cause if isinstance(exc, ActivityError) else exc
        if isinstance(cause, ApplicationError) and cause.type == "InvalidInput":
            raise InvalidInput(cause.message) from None
        raise


def _pinning_summary(request: ResolveAgentsRequest) -> str:
    """`resolve_agents: pin assistant` (and the planner's specialists): which agents the run fixes for itself."""
    names = ", ".join(dict.fromkeys(ref.name for ref in request.agents))
    return f"resolve_agents: pin {names}" + (" and the specialists" if request.specialists else "")


async def _execute(
    options: ActivityOptions,
    arg: Any,
    result_type: type[R],
    summary: str,
    *,
    task_queue: str | None = None,
    activity_id: str | None = None,
) -> R:
    args = [] if arg is None else [arg]
    result: R
    if options.local:
        # Counted while its result is on its way, so the run's handlers see it as a replay will
        # (workflows/local_steps.py).
        result = await progress_of_run().local_steps.run(
            workflow.execute_local_activity(
                options.name,
                args=args,
                result_type=result_type,
                start_to_close_timeout=options.start_to_close_timeout,
                retry_policy=options.retry_policy,
                summary=summary,
            )
        )
        return result
    result = await workflow.execute_activity(
        options.name,
        args=args,
        result_type=result_type,
        start_to_close_timeout=options.start_to_close_timeout,
        heartbeat_timeout=options.heartbeat_timeout,
        retry_policy=options.retry_policy,
        cancellation_type=options.cancellation_type,
        summary=summary,
        task_queue=task_queue,
        activity_id=activity_id,
        priority=activity_priority(),
    )
    return result


def _unless_cancelled(exc: ActivityError) -> None:
    """Re-raise an activity error the run's cancellation caused: it is no tool's or model's failure."""
    if is_cancelled_exception(exc) and patches.patched(CANCELLATION_PATCH):
        raise exc


def _limit_reached(exc: ActivityError) -> SpendLimitReached | None:
    """The spend limit that refused the activity's model call (activities/spend_guard.py; it ends the run), or None."""
    cause = exc.cause
    if not (isinstance(cause, ApplicationError) and cause.type == SPEND_LIMIT_REACHED):
        return None
    found = next((d for d in cause.details if isinstance(d, dict) and "limit" in d), {})
    return SpendLimitReached(
        str(found.get("limit", cause.message)),
        str(found.get("on_limit", "fail")),
        float(found.get("resets_in_seconds", 0.0)),
        dict(found.get("remaining") or {}),
        reported_spend(exc),
    )


def reported_spend(exc: ActivityError) -> Usage | None:
    """What the activity's attempts spent, all of them: its failure's details, or its last heartbeat's on a timeout.

    The SDK's `ActivityError` carries no heartbeat details of its own; each attempt carries the previous attempt's
    spend forward (read from its heartbeat details) and reports the total in its failure's details.
    """
    cause = exc.cause
    if isinstance(cause, ApplicationError):
        return spend_in(cause.details)
    if isinstance(cause, TimeoutError):
        return spend_in(cause.last_heartbeat_details)
    return None


def _failure(exc: ActivityError) -> str:
    """What went wrong in an activity that failed after its retries: its cause's message."""
    return str(exc.cause) if exc.cause is not None else str(exc)
