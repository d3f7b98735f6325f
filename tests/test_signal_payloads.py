"""No payload can stall a run: signals with no, `null`, odd or several payloads are recorded and ignored.

End to end on the dev server, from the `temporal` CLI and the SDK: the run keeps waiting, every bad
attempt is in `ignored_decisions`, a proper approval then completes it, and no workflow task fails.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from temporalio.client import WorkflowUpdateFailedError

from devstack.fake_anthropic import Reply
from models.errors import DecisionRefused
from tests.helpers import event_types, eventually, pending_approvals
from tests.test_approval import NOTE, cli, notes, start
from workflows.approvals import ApprovalBook

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _book() -> ApprovalBook:
    book = ApprovalBook()
    book.open(kind="plan", summary="s", proposal={}, approvers=["alice"], now=T0, timeout=timedelta(hours=1))
    return book


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        ((), 'expected one payload like {"approver": "alice"}, got 0'),
        (({"approver": "alice"}, {"approver": "alice"}), 'expected one payload like {"approver": "alice"}, got 2'),
        ((None,), "payload must be a JSON object, got null"),
        (("yes",), "payload must be a JSON object, got a string"),
        ((["alice"],), "payload must be a JSON object, got a list"),
        ((7,), "payload must be a JSON object, got a number"),
        ((True,), "payload must be a JSON object, got a boolean"),
    ],
)
def test_signal_args_that_cannot_decide_are_recorded(args, reason):
    book = _book()
    outcome = book.apply_signal_args("approve", args, T0)
    assert outcome.reason == reason  # type: ignore[union-attr]
    assert book.pending() and [i.reason for i in book.ignored] == [reason]


@pytest.mark.parametrize("args", [(), (None,), ([1],), ({"approver": "alice"}, {"approver": "alice"})])
def test_decide_args_that_cannot_decide_are_refused(args):

    with pytest.raises(DecisionRefused, match=r"expected one payload|must be a JSON object"):
        _book().check_update_args(args)


async def test_no_payload_can_stall_an_approval_wait(client, worker, fake_llm, dev_server):
    fake_llm.push(Reply(tool_calls=[("write_note", NOTE)]), Reply(text="Saved the note."))
    handle = await start(client, worker, {"prompt": "save", "approval": {"approvers": ["alice"]}}, prefix="payloads")
    await pending_approvals(handle)
    base = ["workflow", "signal", "--address", dev_server.address, "--workflow-id", handle.id]

    await cli(*base, "--name", "approve")  # no --input: zero payloads
    await cli(*base, "--name", "reject", "--input", "null")
    await handle.signal("approve")  # the SDK with no argument: zero payloads too
    await handle.signal("approve", None)
    await handle.signal("reject", "no")
    await handle.signal("approve", ["alice"])
    await handle.signal("approve", args=[{"approver": "alice"}, {"approver": "alice"}])
    await handle.signal("approve", {"approver": "mallory"})
    await handle.signal("approve", {"approver": "alice", "aproved": True})

    async def all_ignored():
        status = await handle.query("status")
        return status if len(status["ignored_decisions"]) == 9 else None

    status = await eventually(all_ignored)
    reasons = [(i["signal"], i["reason"]) for i in status["ignored_decisions"]]
    assert reasons == [
        ("approve", 'expected one payload like {"approver": "alice"}, got 0'),
        ("reject", "payload must be a JSON object, got null"),
        ("approve", 'expected one payload like {"approver": "alice"}, got 0'),
        ("approve", "payload must be a JSON object, got null"),
        ("reject", "payload must be a JSON object, got a string"),
        ("approve", "payload must be a JSON object, got a list"),
        ("approve", 'expected one payload like {"approver": "alice"}, got 2'),
        ("approve", "approver 'mallory' is not allowed to decide (allowed: alice)"),
        ("approve", "invalid payload: aproved: Extra inputs are not permitted"),
    ]
    assert status["state"] == "waiting_for_approval"
    assert [p["request_id"] for p in status["pending_approvals"]] == ["req-1"]
    assert notes(worker) == [] and len(fake_llm.requests) == 1

    # The validated update refuses each bad payload with a reason, changing nothing.
    refusals = [
        ([], "expected one payload like"),
        ([None], "payload must be a JSON object like"),
        (["yes"], "got a string"),
        ([[1]], "got a list"),
        ([{"request_id": "req-1", "approved": True}], "invalid payload: approver: Field required"),
        ([{"request_id": "req-1", "approved": True, "approver": "mallory"}], "approver 'mallory' is not allowed"),
    ]
    for args, message in refusals:
        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await handle.execute_update("decide", args=args)
        assert message in str(refused.value.cause), (args, refused.value.cause)
    assert len((await handle.query("status"))["pending_approvals"]) == 1

    await cli(*base, "--name", "approve", "--input", '{"approver": "alice"}')
    result = await asyncio.wait_for(handle.result(), 20)
    assert result["status"] == "completed" and notes(worker) == [("Answer", "1200")]
    assert "WORKFLOW_TASK_FAILED" not in await event_types(handle)
    fake_llm.assert_script_consumed()
