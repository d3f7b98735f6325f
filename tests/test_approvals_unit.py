"""ApprovalBook (workflows/approvals.py) without a server: who may decide what, and what is refused or ignored."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import pytest

from models.approval import Decision
from models.errors import DecisionRefused, NotAnApprover
from workflows.approval_text import proposal_markdown
from workflows.approvals import MAX_IGNORED, ApprovalBook

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
WEEK = timedelta(days=7)


def book_with(*approver_lists: list[str]) -> ApprovalBook:
    """A book with one open write_note request per approver list, opened a minute apart."""
    book = ApprovalBook()
    for i, approvers in enumerate(approver_lists):
        book.open(
            kind="tool_call",
            summary=f"run write_note(title='n{i + 1}')",
            proposal={"tool": "write_note", "arguments": {"title": f"n{i + 1}", "body": "b"}},
            approvers=approvers,
            now=T0 + timedelta(minutes=i),
            timeout=WEEK,
        )
    return book


def snapshot(book: ApprovalBook) -> dict:
    return book.model_dump(mode="json")


# --- opening and reading requests ---------------------------------------------------------------


def test_requests_get_sequential_ids_and_expire_after_the_timeout():
    book = book_with(["alice"], [])
    assert [r.request_id for r in book.pending()] == ["req-1", "req-2"]
    [first, second] = book.pending_views()
    assert first.request_id == "req-1"
    assert first.proposal == {"tool": "write_note", "arguments": {"title": "n1", "body": "b"}}
    assert first.approvers == ["alice"]
    assert first.expires_at - T0 == WEEK
    assert second.expires_at - T0 == WEEK + timedelta(minutes=1)


def test_approvers_list_is_copied_not_shared():
    approvers = ["alice"]
    book = book_with(approvers)
    approvers.append("mallory")
    assert book.get("req-1").approvers == ["alice"]


# --- signals --------------------------------------------------------------------------------------


def test_signal_without_request_id_decides_the_oldest_pending_request():
    book = book_with([], [], [])
    first = book.apply_signal("approve", {"approver": "alice", "comment": "ok"}, T0 + WEEK / 2)
    assert first.request_id == "req-1"
    assert (first.approved, first.approver, first.comment, first.via) == (True, "alice", "ok", "signal")
    assert first.decided_at == T0 + WEEK / 2

    second = book.apply_signal("reject", {"approver": "bob", "reason": "too risky"}, T0)
    assert second.request_id == "req-2"
    assert (second.approved, second.approver, second.comment) == (False, "bob", "too risky")
    assert [r.request_id for r in book.pending()] == ["req-3"]


def test_signal_with_request_id_decides_that_request_only():
    book = book_with([], [])
    decision = book.apply_signal("approve", {"approver": "alice", "request_id": "req-2"}, T0)
    assert decision.request_id == "req-2" and decision.approved
    assert [r.request_id for r in book.pending()] == ["req-1"]
    assert book.get("req-2").decision == decision


def test_empty_approver_list_lets_anyone_decide():
    book = book_with([])
    assert book.apply_signal("approve", {"approver": "anybody"}, T0).approved


def test_unlisted_approver_is_recorded_and_ignored():
    book = book_with(["alice", "bob"])
    outcome = book.apply_signal("approve", {"approver": "mallory", "comment": "trust me"}, T0)

    assert book.get("req-1").decision is None
    assert [r.request_id for r in book.pending()] == ["req-1"]
    [ignored] = book.ignored
    assert ignored == outcome
    assert (ignored.signal, ignored.approver, ignored.request_id) == ("approve", "mallory", None)
    assert ignored.reason == "approver 'mallory' is not allowed to decide (allowed: alice, bob)"
    assert ignored.received_at == T0
    # A listed approver still can.
    assert book.apply_signal("approve", {"approver": "bob"}, T0).approver == "bob"


@pytest.mark.parametrize(
    ("payload", "reason", "approver"),
    [
        ("yes", "payload must be a JSON object, got a string", None),
        (None, "payload must be a JSON object, got null", None),
        (["alice"], "payload must be a JSON object, got a list", None),
        ({}, "invalid payload: approver: Field required", None),
        ({"approver": ""}, "invalid payload: approver: String should have at least 1 character", ""),
        ({"approver": 7}, "invalid payload: approver: Input should be a valid string", None),
        ({"approver": "alice", "aproved": True}, "invalid payload: aproved: Extra inputs are not permitted", "alice"),
        ({"approver": "alice", "reason": "x"}, "invalid payload: reason: Extra inputs are not permitted", "alice"),
    ],
)
def test_bad_approve_payload_is_recorded_and_ignored(payload, reason, approver):
    book = book_with([])
    before = [r.model_dump() for r in book.requests]
    book.apply_signal("approve", payload, T0)

    assert [r.model_dump() for r in book.requests] == before
    [ignored] = book.ignored
    assert ignored.signal == "approve"
    assert ignored.reason == reason
    assert ignored.approver == approver


def test_bad_reject_payload_is_recorded_with_what_could_be_read():
    book = book_with([])
    book.apply_signal("reject", {"approver": "bob", "request_id": "req-1", "comment": "no"}, T0)
    assert book.get("req-1").decision is None
    [ignored] = book.ignored
    assert (ignored.signal, ignored.approver, ignored.request_id) == ("reject", "bob", "req-1")
    assert ignored.reason == "invalid payload: comment: Extra inputs are not permitted"


def test_signal_for_unknown_request_or_with_nothing_pending_is_ignored():
    book = ApprovalBook()
    book.apply_signal("approve", {"approver": "alice"}, T0)
    book = book_with([])
    book.apply_signal("approve", {"approver": "alice", "request_id": "req-7"}, T0)
    assert book.get("req-1").decision is None
    assert [i.reason for i in book.ignored] == ["unknown request_id 'req-7' (pending: req-1)"]
    assert ApprovalBook().apply_signal("approve", {"approver": "alice"}, T0).reason == "no approval request is pending"


def test_second_signal_on_a_decided_request_is_ignored_and_keeps_the_first_decision():
    book = book_with([])
    first = book.apply_signal("approve", {"approver": "alice", "request_id": "req-1"}, T0)
    book.apply_signal("reject", {"approver": "bob", "request_id": "req-1", "reason": "late"}, T0)
    assert book.get("req-1").decision == first
    assert book.ignored[-1].reason == "request req-1 was already approved by alice"


def test_ignored_log_is_bounded_to_the_latest_entries():
    book = book_with([])
    for i in range(MAX_IGNORED + 50):
        book.apply_signal("approve", {"approver": f"stranger-{i}", "request_id": "req-9"}, T0)
    assert len(book.ignored) == MAX_IGNORED
    assert book.ignored[0].approver == "stranger-50"
    assert book.ignored[-1].approver == f"stranger-{MAX_IGNORED + 49}"


# --- update `decide` ----------------------------------------------------------------------------


def check_refused(book: ApprovalBook, payload, message: str) -> None:
    before = snapshot(book)
    with pytest.raises(DecisionRefused) as refused:
        book.check_update(payload)
    assert str(refused.value) == message
    assert snapshot(book) == before, "a refused update must change nothing"


def test_update_for_unknown_request_is_refused_naming_the_pending_ones():
    book = book_with(["alice"], ["alice"])
    check_refused(
        book,
        {"request_id": "req-9", "approved": True, "approver": "alice"},
        "unknown request_id 'req-9' (pending: req-1, req-2)",
    )
    book.apply_signal("approve", {"approver": "alice"}, T0)
    book.apply_signal("approve", {"approver": "alice"}, T0)
    check_refused(
        book,
        {"request_id": "req-9", "approved": True, "approver": "alice"},
        "unknown request_id 'req-9' (pending: none pending)",
    )


def test_update_from_unlisted_approver_is_refused():
    book = book_with(["alice"])
    check_refused(
        book,
        {"request_id": "req-1", "approved": True, "approver": "mallory"},
        "approver 'mallory' is not allowed to decide (allowed: alice)",
    )
    # Unlike a signal, a refused update is not added to the ignored log: the caller got the answer.
    assert book.ignored == []


def test_update_on_an_already_decided_request_is_refused():
    book = book_with(["alice", "bob"])
    book.apply_signal("reject", {"approver": "bob", "reason": "no"}, T0)
    check_refused(
        book,
        {"request_id": "req-1", "approved": True, "approver": "alice"},
        "request req-1 was already rejected by bob",
    )


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("approve", "got a string"),
        ({"request_id": "req-1", "approver": "alice"}, "invalid payload: approved: Field required"),
        (
            {"request_id": "req-1", "approved": "yes", "approver": "alice"},
            "invalid payload: approved: Input should be a valid boolean",
        ),
        ({"approved": True, "approver": "alice"}, "invalid payload: request_id: Field required"),
        (
            {"request_id": "req-1", "approved": True, "approver": "alice", "reason": "x"},
            "invalid payload: reason: Extra inputs are not permitted",
        ),
    ],
)
def test_malformed_update_is_refused(payload, message):
    book = book_with([])
    before = snapshot(book)
    with pytest.raises(DecisionRefused, match=re.escape(message)):
        book.check_update(payload)
    assert snapshot(book) == before


def test_valid_update_is_checked_then_recorded_and_returned():
    book = book_with(["alice"], ["alice"])
    update = book.check_update(
        {"request_id": "req-2", "approved": False, "approver": "alice", "comment": "not this one"}
    )
    assert book.get("req-2").decision is None, "checking alone must not decide"

    decision = book.apply_update(update, T0 + timedelta(hours=1))
    assert decision.model_dump() == {
        "request_id": "req-2",
        "approved": False,
        "approver": "alice",
        "comment": "not this one",
        "decided_at": T0 + timedelta(hours=1),
        "via": "update",
        "authenticated_by": None,
    }
    assert book.get("req-2").decision == decision
    assert [r.request_id for r in book.pending()] == ["req-1"]


# --- decisions the gateway authenticated -----------------------------------------------------------


@pytest.mark.parametrize(
    ("approvers", "identity", "allowed"),
    [
        (["alice"], "alice", True),
        (["alice"], "mallory", False),
        ([], "alice", False),  # the gateway's rule: an empty list is no one, not anyone
        (["*"], "carol", True),
    ],
)
def test_the_run_holds_gateway_decisions_to_the_gateway_rule(approvers, identity, allowed):
    book = book_with(approvers)
    update = {"request_id": "req-1", "approved": True, "approver": identity, "authenticated_by": "gateway"}
    if allowed:
        assert book.apply_update(book.check_update(update), T0).authenticated_by == "gateway"
    else:
        with pytest.raises(NotAnApprover, match="through the gateway"):
            book.check_update(update)
    signal = {"approver": identity, "request_id": "req-1", "authenticated_by": "gateway"}
    fresh = book_with(approvers)
    outcome = fresh.apply_signal("approve", signal, T0)
    assert isinstance(outcome, Decision) is allowed
    assert fresh.get("req-1").decision is None or allowed


def test_without_the_gateway_an_empty_list_still_means_anyone():
    book = book_with([])
    decision = book.apply_update(book.check_update({"request_id": "req-1", "approved": True, "approver": "x"}), T0)
    assert decision.approver == "x" and decision.authenticated_by is None


# --- timeout --------------------------------------------------------------------------------------


def test_expire_counts_as_rejected_by_timeout():
    book = book_with(["alice"], ["alice"])
    decision = book.expire("req-1", T0 + WEEK)
    assert (decision.approved, decision.approver, decision.comment, decision.via) == (
        False,
        "timeout",
        "approval timed out",
        "timeout",
    )
    assert decision.decided_at == T0 + WEEK
    assert book.get("req-1").decision == decision
    assert [r.request_id for r in book.pending()] == ["req-2"]
    # A late decision on the expired request is refused / ignored; the oldest pending is now req-2.
    check_refused(
        book,
        {"request_id": "req-1", "approved": True, "approver": "alice"},
        "request req-1 was already rejected by timeout",
    )
    assert book.apply_signal("approve", {"approver": "alice"}, T0 + WEEK).request_id == "req-2"


def test_expire_refuses_a_decided_request():
    book = book_with([])
    book.apply_signal("approve", {"approver": "alice"}, T0)
    with pytest.raises(AssertionError):
        book.expire("req-1", T0 + WEEK)


# --- what the UI shows --------------------------------------------------------------------------


def test_proposal_markdown_shows_the_tool_arguments_and_how_to_answer():
    book = book_with(["alice", "bob"])
    text = proposal_markdown("wf-42", book.get("req-1"))
    assert text.startswith("## Waiting for approval: req-1")
    block = text.split("```json\n", 1)[1].split("\n```", 1)[0]
    assert json.loads(block) == {"tool": "write_note", "arguments": {"title": "n1", "body": "b"}}
    assert "Approvers: alice, bob." in text
    assert (T0 + WEEK).isoformat() in text
    assert "temporal workflow signal --workflow-id wf-42 --name approve" in text


def test_a_signal_without_request_id_is_ambiguous_when_several_are_pending():
    book = ApprovalBook()
    for _ in range(2):
        book.open(kind="tool_call", summary="s", proposal={}, approvers=[], now=T0, timeout=timedelta(days=1))
    outcome = book.apply_signal("approve", {"approver": "alice"}, T0, one_pending_only=True)
    assert outcome.reason == "ambiguous: 2 requests are pending (req-1, req-2); name one with request_id"
    assert book.ignored[-1] == outcome and [r.decision for r in book.requests] == [None, None]
    named = book.apply_signal("approve", {"approver": "alice", "request_id": "req-2"}, T0, one_pending_only=True)
    assert named.request_id == "req-2" and named.approved
    single = book.apply_signal("reject", {"approver": "alice"}, T0, one_pending_only=True)
    assert single.request_id == "req-1" and not single.approved


def test_approvers_star_lets_anyone_named_decide_only_when_the_run_honours_it():
    book = ApprovalBook()
    for honoured in (True, False):
        book.open(
            kind="tool_call",
            summary="s",
            proposal={},
            approvers=["*"],
            now=T0,
            timeout=timedelta(days=1),
            any_approver=honoured,
        )
    assert book.apply_update(book.check_update({"request_id": "req-1", "approved": True, "approver": "carol"}), T0)
    with pytest.raises(NotAnApprover):
        book.check_update({"request_id": "req-2", "approved": True, "approver": "carol"})
