"""Runs started without a fairness key (CLI, SDK) give their activities the run's customer as key (real dev server)."""

from __future__ import annotations

from temporalio.api.enums.v1 import EventType

from devstack.fake_anthropic import Reply
from models.spend_limits import fairness
from tests.conftest import workflow_id


async def _call_llm_priorities(handle):
    """The priority recorded on each call_llm the run scheduled."""
    found = []
    async for event in handle.fetch_history_events():
        attributes = event.activity_task_scheduled_event_attributes
        if (
            event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
            and attributes.activity_type.name == "call_llm"
        ):
            found.append(attributes.priority)
    return found


async def _run(client, settings, fake_llm, run_input, **start):
    fake_llm.push(Reply(text="hello"))
    handle = await client.start_workflow(
        "AgentLoopWorkflow", run_input, id=workflow_id("fair"), task_queue=settings.task_queue, **start
    )
    await handle.result()
    return handle, await _call_llm_priorities(handle)


async def test_a_run_started_without_a_key_gives_its_model_calls_its_customer_as_key(client, worker, fake_llm):
    handle, [priority] = await _run(client, worker, fake_llm, {"prompt": "hi", "customer_id": "cust-cli"})
    assert priority.fairness_key == "cust-cli" and priority.fairness_weight == 0.0  # 0: the server's default weight
    assert (await handle.describe()).raw_info.priority.fairness_key == ""  # the run's own tasks stay keyless
    _, [anonymous] = await _run(client, worker, fake_llm, {"prompt": "hi"})
    assert anonymous.fairness_key == "-"  # runs without a customer share one key, as through the gateway


async def test_a_run_started_with_a_key_lets_its_activities_inherit_it(client, worker, fake_llm):
    started_with = fairness(None, "cust-gw")
    handle, [priority] = await _run(
        client, worker, fake_llm, {"prompt": "hi", "customer_id": "other"}, priority=started_with
    )
    assert priority.fairness_key in ("", "cust-gw")  # nothing of its own: the server applies the run's
    assert priority.fairness_key != "other"
    assert (await handle.describe()).raw_info.priority.fairness_key == "cust-gw"
