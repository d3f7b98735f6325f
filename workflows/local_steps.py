"""Local activities as the run's other work sees them: the same on first execution and on replay.

The SDK core may complete a workflow task to answer a query (a follower's read, a `status` poll) while a local
activity's result is on its way. The result's marker is recorded in that task, but the workflow learns the
result only in the next task, together with what that task brings (followers' polls, signals), whose handlers
the SDK runs first. A replay hands the result over in the earlier task, alone, at the time the local activity
completed. Seen in this suite: a poll accepted in that next task was recorded before the step's next command,
and came after it on replay ("Activity machine does not handle this event: WorkflowExecutionUpdateAccepted");
and the events the step published carried the next task's time, then the completion time once replayed.

So, with `LocalSteps.outstanding` counting local activities whose result the run has not taken yet:
- followers' polls are refused while one is outstanding (workflows/progress.py; a refusal leaves nothing in
  history, and the follower polls again at once);
- the stream's publish signal waits until none is, so its items follow the step's own events both ways;
- events a local activity's continuation publishes, until the run next checks its wait conditions, carry the time
  the local activity was scheduled (`clock`), which both executions agree on.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from datetime import datetime
from typing import TypeVar

from temporalio import workflow

T = TypeVar("T")


class LocalSteps:
    """The run's local activities in flight, and the clock its progress events use."""

    def __init__(self, ordered: bool) -> None:
        self.ordered = ordered
        """Whether signals wait for local results and continuations keep the scheduling time (LOCAL_STEPS_PATCH)."""
        self.outstanding = 0
        self._held: tuple[datetime, datetime] | None = None
        """(the time a local activity was scheduled, the run's time when its result came) for its continuation."""
        self._releasing: asyncio.Future[None] | None = None

    def clock(self) -> datetime:
        """`workflow.now()`, except in a local activity's continuation: the time that activity was scheduled."""
        now = workflow.now()
        if self._held is not None and self._held[1] == now:
            return self._held[0]
        return now

    async def run(self, local_activity: Awaitable[T]) -> T:
        """Await `local_activity` (not yet started) as an outstanding local step."""
        scheduled_at = self.clock()
        self.outstanding += 1
        try:
            result = await local_activity
        except asyncio.CancelledError:  # the task itself is cancelled (an eviction too): no continuation to time
            self.outstanding -= 1
            raise
        except BaseException:
            self.outstanding -= 1
            self._hold(scheduled_at)
            raise
        self.outstanding -= 1
        self._hold(scheduled_at)
        return result

    def _hold(self, scheduled_at: datetime) -> None:
        if not self.ordered:
            return
        self._held = (scheduled_at, workflow.now())
        # Released by the next check of the run's wait conditions, before any task a condition wakes runs: the
        # continuation is what runs before it (handlers that waited, decisions' waiters run after).
        self._releasing = asyncio.ensure_future(workflow.wait_condition(self._release))

    def _release(self) -> bool:
        self._held = None
        return True

    async def settled(self) -> None:
        """Return once no local activity's result is outstanding (at once when none is, or when not `ordered`)."""
        if self.ordered and self.outstanding:
            await workflow.wait_condition(lambda: self.outstanding == 0)
