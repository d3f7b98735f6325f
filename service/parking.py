"""Parking: a run that starts waiting for a person leaves the worker's workflow cache; active runs keep it.

The SDK's cache (`WORKER_MAX_CACHED_WORKFLOWS`) is one bound for two kinds of runs. An active run, between model
calls, wants to stay cached: each workflow task of an evicted run replays its history first (at 100 concurrent
runs and 25 cached, 1.5x the worker's CPU per step, bench/scale.py). A run waiting days for an approval gains
nothing from its place: it costs about 0.3 MiB while cached (bench/waiting.py) and a replay of ~100 ms when its
decision comes. So the cache can be sized for the active runs only if the waiting ones leave it.

After each live activation (not a replayed one), a run whose `AgentStatus` (as its completions upserted it) is
`waiting_for_approval` is handed to Core's eviction request (`request_workflow_eviction`, the one Core uses for its own evictions). Core
evicts only once the run has no outstanding activation or buffered task, so the completion that parked it is sent
first, and a decision that arrives meanwhile is buffered and replayed. Nothing in the run's history changes: an
eviction is what a full cache does anyway.

The bridge worker's eviction request is the SDK's `temporalio.bridge.worker.Worker.request_workflow_eviction`,
which the SDK's public `Worker` does not expose; it is reached through `Worker._bridge_worker`. Without it (an
SDK that renamed it), parking is off and the worker says so once at start.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from temporalio.bridge.proto.workflow_activation import WorkflowActivation
from temporalio.bridge.proto.workflow_completion import WorkflowActivationCompletion
from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails, WorkflowRunner

from models.run import RunStatus
from service.sandbox import ForwardingInstance

if TYPE_CHECKING:
    from temporalio.worker import Worker
    from temporalio.workflow import _Definition

log = logging.getLogger(__name__)

STATUS_ATTRIBUTE = "AgentStatus"
PARKED_STATES = frozenset({RunStatus.WAITING_FOR_APPROVAL.value})
"""Statuses a run holds while it waits for a person (hours or days): the run leaves the cache."""


def upserted_status(completion: WorkflowActivationCompletion) -> str | None:
    """The last `AgentStatus` a successful completion upserts; None if it upserts none."""
    if not completion.HasField("successful"):
        return None
    status = None
    for command in completion.successful.commands:
        if command.HasField("upsert_workflow_search_attributes"):
            fields = command.upsert_workflow_search_attributes.search_attributes.indexed_fields
            if STATUS_ATTRIBUTE in fields:
                try:
                    status = json.loads(fields[STATUS_ATTRIBUTE].data)
                except ValueError:
                    status = None
    return status


def track_updates(completion: WorkflowActivationCompletion, in_flight: set[str]) -> None:
    """Add the updates `completion` accepts to `in_flight`, and drop those it answers (completed or rejected)."""
    if not completion.HasField("successful"):
        return
    for command in completion.successful.commands:
        if command.HasField("update_response"):
            response = command.update_response
            if response.HasField("accepted"):
                in_flight.add(response.protocol_instance_id)
            elif response.HasField("completed") or response.HasField("rejected"):
                in_flight.discard(response.protocol_instance_id)


def may_park(act: WorkflowActivation, completion: WorkflowActivationCompletion) -> bool:
    """Whether the run may leave the cache after this activation (given that it waits for a person).

    Not while replaying history (a run rebuilt after its decision replays the activation that parked it, and must
    not be parked again mid-task), though after a query (which the SDK marks replaying: a run rebuilt to answer one
    leaves again); not with a local activity scheduled (it runs inside this workflow task, in this worker); not
    after a failed activation; not when the activation is itself the eviction.
    """
    if not completion.HasField("successful") or any(job.HasField("remove_from_cache") for job in act.jobs):
        return False
    only_queries = bool(act.jobs) and all(job.HasField("query_workflow") for job in act.jobs)
    if act.is_replaying and not only_queries:
        return False
    return not any(command.HasField("schedule_local_activity") for command in completion.successful.commands)


class Parking:
    """One worker's parking: the eviction request, bound when the worker runs, and a count of parked runs."""

    def __init__(self) -> None:
        self._evict: Callable[[str], None] | None = None
        self.parked = 0
        """Evictions requested since the worker started (a run rebuilt for a query or a late activity result while it
        still waits is parked again: it counts again)."""

    def bind(self, worker: Worker) -> None:
        """Use `worker`'s eviction request from now on (a replayer never binds: nothing is parked)."""
        bridge = getattr(worker, "_bridge_worker", None)
        evict = getattr(bridge, "request_workflow_eviction", None)
        if evict is None:
            log.warning("parking waiting runs is off: this temporalio has no request_workflow_eviction")
            return
        self._evict = evict

    def unbind(self) -> None:
        """The worker stopped: no more requests."""
        self._evict = None

    def after(
        self, run_id: str, status: str | None, act: WorkflowActivation, completion: WorkflowActivationCompletion
    ) -> None:
        """Park the run if it waits for a person (`status`, as its upserts left it) and this activation allows."""
        if self._evict is not None and status in PARKED_STATES and may_park(act, completion):
            try:
                self._evict(run_id)
            except Exception as exc:  # the run stays cached: only memory is at stake
                log.warning("could not park run %s: %s", run_id, exc)
                return
            self.parked += 1


class _ParkingInstance(ForwardingInstance):
    """Forwards everything to the runner's instance; after each activation, asks parking about the run."""

    def __init__(self, inner: WorkflowInstance, run_id: str, parking: Parking) -> None:
        super().__init__(inner)
        self._run_id = run_id
        self._parking = parking
        self._status: str | None = None
        """The run's `AgentStatus` as its upserts so far (replayed ones too) left it."""
        self._updates: set[str] = set()
        """Updates accepted and not yet answered: a follower's long poll (progress, the gateway) is one. Evicting
        the run would end its handler until something rebuilds the run, so a followed run stays cached."""

    def activate(self, act: WorkflowActivation) -> WorkflowActivationCompletion:
        completion = self._inner.activate(act)
        self._status = upserted_status(completion) or self._status
        track_updates(completion, self._updates)
        if not self._updates:
            self._parking.after(self._run_id, self._status, act, completion)
        return completion


class ParkingRunner(WorkflowRunner):
    """`inner` (the worker's sandbox), its instances watched by `parking`."""

    def __init__(self, inner: WorkflowRunner, parking: Parking | None = None) -> None:
        self.inner = inner
        self.parking = parking or Parking()

    def prepare_workflow(self, defn: _Definition) -> None:
        self.inner.prepare_workflow(defn)

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return _ParkingInstance(self.inner.create_instance(det), det.info.run_id, self.parking)

    def set_worker_level_failure_exception_types(self, types: Any) -> None:
        self.inner.set_worker_level_failure_exception_types(types)


def parking_of(worker: Worker) -> Parking | None:
    """The parking `worker`'s runner carries, if it is a ParkingRunner."""
    runner = worker.config(active_config=True).get("workflow_runner")
    return runner.parking if isinstance(runner, ParkingRunner) else None
