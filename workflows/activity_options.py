"""How a workflow calls each activity: timeouts, heartbeats, retries, local or not, in one table.

`workflows/calls.py` calls every activity with its row here; `tests/test_workflow_layering.py` checks the table
covers every activity the worker registers.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta

from temporalio.common import RetryPolicy
from temporalio.workflow import ActivityCancellationType


@dataclass(frozen=True)
class ActivityOptions:
    """How a workflow calls one activity (the fields the SDK's `ModelActivityParameters` has for its model calls)."""

    name: str
    """The activity's registered name (`@activity.defn(name=...)`)."""
    start_to_close_timeout: timedelta
    """Longest one attempt may take; a slower attempt is abandoned and retried."""
    heartbeat_timeout: timedelta | None = None
    """Longest silence between heartbeats before Temporal counts the worker as dead and retries elsewhere.
    The activity heartbeats at a fraction of it (activities/heartbeat.py), so this alone sets both."""
    retry_policy: RetryPolicy | None = None
    """Attempts and backoff; None keeps Temporal's default (unlimited attempts)."""
    local: bool = False
    """Run inside the workflow task as a local activity: no server round trip, and its input never enters history."""
    cancellation_type: ActivityCancellationType = ActivityCancellationType.TRY_CANCEL
    """On the run's cancellation: TRY_CANCEL stops waiting at once; WAIT_CANCELLATION_COMPLETED waits until the
    activity has seen the cancellation and stopped (for activities with side effects, so none happen after the close)."""


RECOVERY_HEARTBEAT_TIMEOUT = timedelta(seconds=2)
"""Silence after which a model or tool call's worker counts as dead and the call is retried on another.

With beats every 2/3 s (activities/heartbeat.py) a live worker may stall 1.3 s before a false timeout; a
SIGKILLed worker's step resumes within about 2 s + the first retry (0.25 s) + the sticky timeout (0.5 s)."""

CALL_LLM = ActivityOptions(
    name="call_llm",
    start_to_close_timeout=timedelta(minutes=3),
    heartbeat_timeout=RECOVERY_HEARTBEAT_TIMEOUT,  # a crashed worker's call is retried within ~2 s, not 3 min
    # A quick first retry (a crashed worker's call resumes at once), then steep backoff: 8 attempts still span
    # about 2.5 minutes of provider trouble (429s bring their own retry-after as next_retry_delay).
    retry_policy=RetryPolicy(
        initial_interval=timedelta(milliseconds=250),
        backoff_coefficient=3.0,
        maximum_interval=timedelta(seconds=60),
        maximum_attempts=8,
    ),
)
RUN_TOOL = ActivityOptions(
    name="run_tool",
    start_to_close_timeout=timedelta(seconds=30),
    heartbeat_timeout=RECOVERY_HEARTBEAT_TIMEOUT,  # run_tool heartbeats: a cancellation reaches the handler in ~1 s
    cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,  # a cancelled run writes nothing after
)
"""Defaults only: each call takes its timeout and retry policy from the tool's declaration (`tool_options`)."""
INVOKE_BLACK_BOX = ActivityOptions(
    name="invoke_agent",
    start_to_close_timeout=timedelta(minutes=15),
    heartbeat_timeout=timedelta(seconds=10),
    cancellation_type=ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,  # its tools stop before the run closes
    # A retried attempt resumes at the agent's last completed turn (activities/black_box/checkpoint.py), so an
    # attempt lost with its worker re-pays one turn at most: five attempts let a black box outlive its worker
    # being lost several times (each loss counts as an attempt), while an agent that keeps failing still stops.
    retry_policy=RetryPolicy(
        initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30), maximum_attempts=5
    ),
)
SEND_NOTIFICATION = ActivityOptions(
    name="send_notification",
    start_to_close_timeout=timedelta(seconds=30),
    retry_policy=RetryPolicy(
        initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30), maximum_attempts=10
    ),
)
NOTIFY_APPROVAL = ActivityOptions(
    name="notify_approval",
    start_to_close_timeout=timedelta(seconds=10),
    retry_policy=RetryPolicy(
        initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30), maximum_attempts=10
    ),
)
ARCHIVE_RUN = ActivityOptions(
    name="archive_run",
    start_to_close_timeout=timedelta(minutes=2),
    retry_policy=RetryPolicy(
        initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30), maximum_attempts=6
    ),
    local=True,  # its input (output, conversations) goes from workflow memory to the store, never into history
)
HISTORY_LIMITS = ActivityOptions(name="history_limits", start_to_close_timeout=timedelta(seconds=10), local=True)
RESOLVE_AGENTS = ActivityOptions(
    name="resolve_agents",
    start_to_close_timeout=timedelta(seconds=30),
    retry_policy=RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_attempts=5),
    local=True,  # once per run; its answer (the pinned specs) is a marker in history
)

ACTIVITY_OPTIONS = (
    CALL_LLM,
    RUN_TOOL,
    INVOKE_BLACK_BOX,
    SEND_NOTIFICATION,
    ARCHIVE_RUN,
    HISTORY_LIMITS,
    RESOLVE_AGENTS,
    NOTIFY_APPROVAL,
)
"""The table: every activity a workflow calls, with how it is called."""


def tool_options(timeout: timedelta, retry: RetryPolicy, *, local: bool = False) -> ActivityOptions:
    """`run_tool` as one tool's declaration wants it called."""
    return replace(RUN_TOOL, start_to_close_timeout=timeout, retry_policy=retry, local=local)
