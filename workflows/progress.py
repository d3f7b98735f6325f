"""The run's progress stream, workflow side: one `WorkflowStream` per run, carried across continue-as-new.

Workflow-side publishes only append to the stream's in-memory log (no command, no history event), and a
replay appends the same events in the same order, so offsets are stable. Activities publish through
signals (activities/progress_publisher.py); followers read with polling updates, or queries once the run
has closed (progress/reader.py). Runs recorded before the stream existed have no marker for
`PROGRESS_PATCH` and replay without publishing.

Followers' polls are updates, and the server admits 10 in flight per run: the run admits at most
`MAX_POLLS_IN_FLIGHT` polls at once (and `MAX_POLLS_PER_RUN` in all), so `decide` always finds room, and since
`POLL_BOUND_PATCH` a poll returns empty after `POLL_WAIT`, so one whose follower went away does not stay in
flight while the run waits for days.

Local activities (workflows/local_steps.py): a poll is refused while one's result is outstanding, the publish
signal waits for none to be, and a local activity's continuation stamps its events with the time it was
scheduled, so a run replays to the very stream its followers saw.

A query answers from the worker's state, which may hold a workflow task the server has not recorded yet (its
events are made again, with another time, if that task fails). The `COMMITTED_QUERY` says where what is surely
recorded ends: before the events of the last task the worker ran itself, until a later task shows it was recorded.
Readers by query stop there and read the rest with polls, whose answers the server only delivers once recorded.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.contrib.workflow_streams import (
    PollInput,
    PollResult,
    PublishInput,
    WorkflowStream,
    WorkflowStreamState,
)
from temporalio.exceptions import ApplicationError

from workflows import patches
from workflows.local_steps import LocalSteps

with workflow.unsafe.imports_passed_through():
    from pydantic import TypeAdapter

    from models.progress import POLL_DEFERRED, POLL_REFUSED, POLL_WAIT, PROGRESS_TOPIC, poll_refusal

PROGRESS_PATCH = "progress-stream"
"""Runs recorded before the progress stream replay without it (no events, activities told not to publish)."""
POLL_BOUND_PATCH = "bounded-stream-polls"
"""Runs recorded before polls were bounded replay with polls that wait until there is news (no timers)."""
LOCAL_STEPS_PATCH = "local-steps-in-replay-order"
"""Runs recorded before it take publish signals and stamp events as they come (workflows/local_steps.py)."""
_POLL = "__temporal_workflow_stream_poll"
_PUBLISH = "__temporal_workflow_stream_publish"
_END_QUERY = "__temporal_workflow_stream_offset"
COMMITTED_QUERY = "progress_committed_offset"
Poll = Callable[[PollInput], Awaitable[PollResult]]


class RunProgress:
    """Publishes the run's events (`llm_started`, `tool_finished`, `run_finished`, ...) on its stream."""

    def __init__(
        self,
        prior: WorkflowStreamState | None = None,
        *,
        enabled: bool = True,
        bounded: bool = False,
        ordered: bool = False,
    ) -> None:
        # Constructed in the run's first activation, before any await; WorkflowStream requires its caller to be
        # an `__init__`, which this is.
        self.enabled = enabled
        self.local_steps = LocalSteps(ordered)
        self._stream: WorkflowStream | None = WorkflowStream(prior) if enabled else None
        self._task_mark = -1
        """History length of the last workflow task that added events (the run's tasks each have their own)."""
        self._task_start = 0
        """The stream's end when that task added its first event: what queries may read while it is the latest."""
        self._task_replayed = True
        """Whether that task came from the recorded history (a replay): then all of it is recorded."""
        self._polls = 0
        self._admitted = 0
        self._detached = False
        self._ticks = 0
        """How often the poll-release timer fired: a poll waiting since an earlier count returns empty."""
        self._release: asyncio.Future[None] | None = None
        if self._stream is not None:
            self._count_polls(bounded)
            self._order_publishes()
            workflow.set_query_handler(COMMITTED_QUERY, self.committed_end)

    @classmethod
    def disabled(cls) -> RunProgress:
        """A stream that publishes nothing: before the run opens its own, and in runs recorded before streams."""
        return cls(enabled=False)

    @classmethod
    def open(cls, carry: Any) -> RunProgress:
        """The run's stream: fresh, or the previous generation's handed over in `carry["progress"]`."""
        if not patches.patched(PROGRESS_PATCH):
            return cls.disabled()
        prior = carry.get("progress") if isinstance(carry, dict) else None
        state = TypeAdapter(WorkflowStreamState).validate_python(prior) if prior else None
        return cls(state, bounded=patches.patched(POLL_BOUND_PATCH), ordered=patches.patched(LOCAL_STEPS_PATCH))

    def _count_polls(self, bounded: bool) -> None:
        """Wrap the stream's poll update so the run can tell followers' polls from its own handlers, and bound them."""
        poll: Poll | None = workflow.get_update_handler(_POLL)
        assert poll is not None

        async def counted(payload: PollInput) -> PollResult:
            self._polls += 1
            self._admitted += 1
            try:
                return await (self._within_bound(poll, payload) if bounded else poll(payload))
            finally:
                self._polls -= 1

        workflow.set_update_handler(_POLL, counted, validator=self._validate_poll)

    def _validate_poll(self, payload: PollInput) -> None:
        # A refusal here is not recorded in history, so these rules apply to runs recorded before them too.
        if self._detached:  # the stream's own validator's rule, with its well-known error type
            raise ApplicationError("Workflow pollers are detached for continue-as-new", type="StreamDraining")
        if self.local_steps.outstanding:  # accepted now, it would be recorded out of a replay's order
            raise ApplicationError("a local step of this run is finishing: poll again", type=POLL_DEFERRED)
        refusal = poll_refusal(self._polls, self._admitted)
        if refusal is not None:
            raise ApplicationError(refusal, type=POLL_REFUSED)

    async def _within_bound(self, poll: Poll, payload: PollInput) -> PollResult:
        """The stream's poll, or an empty result (the follower's offset unchanged) once the release timer fires."""
        end_of_stream = workflow.get_query_handler(_END_QUERY)  # the stream's own offset query: its log's end
        if end_of_stream is not None and payload.from_offset < end_of_stream():
            return await poll(payload)  # there is news already: answered at once, no timer needed
        answer = asyncio.ensure_future(poll(payload))
        since = self._ticks
        self._start_release_timer()
        await workflow.wait_condition(lambda: answer.done() or self._ticks != since)
        if answer.done():
            return answer.result()
        answer.cancel()  # only its wait ends: the stream's state is untouched
        return PollResult(items=[], next_offset=payload.from_offset)

    def _start_release_timer(self) -> None:
        """One timer for every waiting poll, not one each: a history costs the same with one follower or several,
        and a poll answered early (the usual case while the run works) cancels nothing."""
        if self._release is not None and not self._release.done():
            return

        async def release() -> None:
            await workflow.sleep(POLL_WAIT)
            self._ticks += 1

        self._release = asyncio.ensure_future(release())

    def _order_publishes(self) -> None:
        """Activities' batches wait for the run's outstanding local results (module docstring)."""
        publish = workflow.get_signal_handler(_PUBLISH)
        assert publish is not None

        async def after_local_steps(payload: PublishInput) -> None:
            await self.local_steps.settled()
            self._note_task()
            publish(payload)

        workflow.set_signal_handler(_PUBLISH, after_local_steps)

    def _end(self) -> int:
        end_of_stream = workflow.get_query_handler(_END_QUERY)
        assert end_of_stream is not None
        return int(end_of_stream())

    def _note_task(self) -> None:
        """Before adding events: the first the current workflow task adds starts what may not be recorded yet."""
        mark = workflow.info().get_current_history_length()
        if mark != self._task_mark:
            self._task_mark, self._task_start = mark, self._end()
            self._task_replayed = workflow.unsafe.is_replaying()

    def committed_end(self) -> int:
        """The query `COMMITTED_QUERY`: the offset before which every event is recorded in the run's history.

        The events of the last task that added any are recorded when that task was replayed from history, or when
        the worker has run a later task since (the server hands one over only once the earlier is recorded).
        """
        if self._task_replayed or self._task_mark < workflow.info().get_current_history_length():
            return self._end()
        return self._task_start

    def publish(self, type_: str, **fields: Any) -> None:
        """Append one event; its offset is its place in the stream, given to followers when they read it."""
        if self._stream is None:
            return
        self._note_task()
        event = {"type": type_, "at": self.local_steps.clock().isoformat(), **fields}
        self._stream.topic(PROGRESS_TOPIC).publish(event)

    @property
    def asks_activities(self) -> bool:
        """Whether activities should publish their own events (text deltas, black-box turns) to this run."""
        return self._stream is not None

    def handlers_finished(self) -> bool:
        """`workflow.all_handlers_finished()`, except followers' long polls (which a hand-over releases)."""
        if workflow.all_handlers_finished():
            return True
        # approve/reject/decide are synchronous: only polls stay in flight across activations.
        return self._polls > 0

    async def hand_over(self) -> WorkflowStreamState | None:
        """Release followers' polls (they follow the next run) and return the state the next generation resumes."""
        if self._stream is None:
            return None
        self._detached = True
        self._stream.detach_pollers()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self._stream.get_state(publisher_ttl=timedelta(minutes=30))

    async def close(self) -> None:
        """At the run's end: release waiting polls with the last events, so none is left running."""
        if self._stream is None:
            return
        self._stream.detach_pollers()
        self._detached = True
        await workflow.wait_condition(workflow.all_handlers_finished)

    # -- the events --------------------------------------------------------------------------------
    def stage(self, stage: str, waiting_for: str | None) -> None:
        """The hybrid entered a stage."""
        self.publish("stage", stage=stage, waiting_for=waiting_for)

    def approval_requested(self, request_id: str, summary: str, kind: str, approvers: list[str]) -> None:
        """A request now waits for a person; followers show how to decide it."""
        self.publish("approval_requested", request_id=request_id, summary=summary, kind=kind, approvers=approvers)

    def approval_decided(self, request_id: str, approved: bool, approver: str | None, via: str) -> None:
        """A request was decided (or expired: `via` is `timeout`)."""
        self.publish("approval_decided", request_id=request_id, approved=approved, approver=approver, via=via)

    def run_finished(self, status: str) -> None:
        """The run reached a final state: the last event of its stream."""
        self.publish("run_finished", status=status)


def progress_of_run() -> RunProgress:
    """The current run's stream (a disabled one outside agent workflows, e.g. in bench workflows)."""
    progress = getattr(workflow.instance(), "_progress", None)
    return progress if progress is not None else RunProgress.disabled()
