"""Parking (service/parking.py): a run that starts waiting for approval leaves the worker's cache, and goes on."""

from __future__ import annotations

import asyncio
import dataclasses
import json

from temporalio.api.common.v1 import Payload
from temporalio.bridge.proto.workflow_activation import WorkflowActivation
from temporalio.bridge.proto.workflow_commands import WorkflowCommand
from temporalio.bridge.proto.workflow_completion import WorkflowActivationCompletion

from devstack.fake_anthropic import Reply
from service.parking import may_park, parking_of, track_updates, upserted_status
from tests.test_approval import NOTE, pending_approvals, start
from worker import build_worker


def cached_runs(worker) -> set[str]:
    """Run ids the worker holds in its workflow cache (the SDK's own table: a test may look, the product does not)."""
    return set(worker._workflow_worker._running_workflows)


def completion(*statuses: str, local_activity: bool = False) -> WorkflowActivationCompletion:
    done = WorkflowActivationCompletion(run_id="r")
    for status in statuses:
        command = WorkflowCommand()
        fields = command.upsert_workflow_search_attributes.search_attributes.indexed_fields
        fields["AgentStatus"].CopyFrom(Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(status).encode()))
        done.successful.commands.append(command)
    if local_activity:
        command = WorkflowCommand()
        command.schedule_local_activity.activity_type = "archive_run"
        done.successful.commands.append(command)
    if not statuses and not local_activity:
        done.successful.SetInParent()
    return done


def test_the_last_status_upserted_is_read_and_only_a_quiet_live_activation_may_park() -> None:
    assert upserted_status(completion("waiting_for_approval")) == "waiting_for_approval"
    assert upserted_status(completion("waiting_for_approval", "running")) == "running"  # the last upsert counts
    assert upserted_status(completion()) is None
    live, replaying = WorkflowActivation(run_id="r"), WorkflowActivation(run_id="r", is_replaying=True)
    assert may_park(live, completion())
    # A run rebuilt after its decision replays the activation that parked it: not parked again mid-task.
    assert not may_park(replaying, completion("waiting_for_approval"))
    # A local activity runs inside this task, in this worker: the run stays until it is done.
    assert not may_park(live, completion("waiting_for_approval", local_activity=True))
    query = WorkflowActivation(run_id="r", is_replaying=True)
    query.jobs.add().query_workflow.query_type = "status"
    assert may_park(query, completion())  # a run rebuilt to answer a query leaves again
    failed = WorkflowActivationCompletion(run_id="r")
    failed.failed.failure.message = "boom"
    assert upserted_status(failed) is None and not may_park(live, failed)
    eviction = WorkflowActivation(run_id="r")
    eviction.jobs.add().remove_from_cache.message = "cache full"
    assert not may_park(eviction, completion())


def test_updates_in_flight_are_tracked_until_answered() -> None:
    def responses(**kinds: str) -> WorkflowActivationCompletion:
        done = WorkflowActivationCompletion(run_id="r")
        for update_id, kind in kinds.items():
            command = done.successful.commands.add()
            command.update_response.protocol_instance_id = update_id
            if kind == "completed":
                command.update_response.completed.SetInParent()
            elif kind == "rejected":
                command.update_response.rejected.message = "no"
            else:
                command.update_response.accepted.SetInParent()
        return done

    in_flight: set[str] = set()
    track_updates(responses(poll1="accepted", poll2="accepted"), in_flight)
    assert in_flight == {"poll1", "poll2"}
    track_updates(responses(poll1="completed", bad="rejected"), in_flight)
    assert in_flight == {"poll2"}
    track_updates(responses(poll2="rejected"), in_flight)
    assert in_flight == set()


async def test_a_run_waiting_for_approval_leaves_the_cache_and_completes_when_approved(client, settings, fake_llm):
    fake_llm.push(Reply(tool_calls=[("write_note", NOTE)]), Reply(text="Saved the note."))
    async with build_worker(client, settings) as worker:
        parking = parking_of(worker)
        assert parking is not None and parking.parked == 0
        handle = await start(client, settings)
        await pending_approvals(handle)
        run_id = (await handle.describe()).run_id
        for _ in range(100):  # Core evicts once the task that parked it is done
            if run_id not in cached_runs(worker):
                break
            await asyncio.sleep(0.05)
        assert run_id not in cached_runs(worker)
        assert parking.parked >= 1
        assert (await handle.query("status"))["state"] == "waiting_for_approval"  # a query replays it, and answers
        parked = parking.parked

        await handle.signal("approve", {"approver": "alice"})
        result = await asyncio.wait_for(handle.result(), 20)
        assert result["status"] == "completed" and result["output"] == "Saved the note."
        assert parking.parked == parked  # replaying the wait did not park it again
    fake_llm.assert_script_consumed()


async def test_with_parking_off_a_waiting_run_stays_cached(client, settings, fake_llm):
    fake_llm.push(Reply(tool_calls=[("write_note", NOTE)]), Reply(text="Saved the note."))
    async with build_worker(client, dataclasses.replace(settings, park_waiting_runs=False)) as worker:
        assert parking_of(worker) is None
        handle = await start(client, settings)
        await pending_approvals(handle)
        await asyncio.sleep(1)
        assert (await handle.describe()).run_id in cached_runs(worker)
        await handle.signal("approve", {"approver": "alice"})
        assert (await asyncio.wait_for(handle.result(), 20))["status"] == "completed"
