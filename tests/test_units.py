"""Pure pieces, no server: calculator, error classification, budgets, settings, the notes store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from activities.providers.errors import http_error, retry_after
from config.settings import Settings
from models.conversation import ToolCall, ToolOutcome
from models.errors import ConfigError, ToolInputError
from models.llm import LlmResponse
from models.pricing import FALLBACK_PER_MTOK, cost_usd
from models.run import Budget, Usage
from tools.calculator import evaluate, format_number
from tools.catalog import REGISTRY
from tools.notes import NoteStore
from tools.registry import check_tool_call
from workflows.ledger import RunLedger

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "expr, value",
    [("6000 * 0.2", "1200"), ("(3 + 4) ** 2", "49"), ("-7 // 2", "-4"), ("10 / 4", "2.5"), ("7 % 3", "1")],
)
def test_calculator_evaluates_arithmetic(expr, value):
    assert format_number(evaluate(expr)) == value


@pytest.mark.parametrize(
    "expr, problem",
    [
        ("__import__('os')", "unsupported element Call"),
        ("1/0", "division by zero"),
        ("2 ** 100000", "exponent"),
        ("1 +", "not an arithmetic"),
        ("'a' * 3", "unsupported"),
    ],
)
def test_calculator_refuses_anything_else(expr, problem):
    with pytest.raises(ToolInputError, match=problem):
        evaluate(expr)


@pytest.mark.parametrize(
    "status, retryable",
    [
        (400, False),
        (401, False),
        (404, False),
        (408, True),
        (409, True),
        (429, True),
        (500, True),
        (503, True),
        (529, True),
    ],
)
def test_http_errors_are_classified_once(status, retryable):
    assert http_error("anthropic", status, "m", {}).non_retryable is not retryable


def test_retry_after_becomes_next_retry_delay():
    err = http_error("anthropic", 429, "slow down", {"retry-after": "7"})
    assert err.next_retry_delay == timedelta(seconds=7)
    assert retry_after({"retry-after-ms": "250"}) == timedelta(milliseconds=250)
    assert retry_after({"retry-after": "soon"}) is None
    assert http_error("anthropic", 400, "bad", {"retry-after": "7"}).next_retry_delay is None


def test_cost_uses_the_price_table_and_a_safe_fallback():
    assert cost_usd("anthropic:claude-sonnet-5-5", 1_000_000, 1_000_000) == 18.0
    assert cost_usd("anthropic:some-future-model", 1_000_000, 0) == FALLBACK_PER_MTOK[0]


def test_ledger_stops_at_each_ceiling():
    ledger = RunLedger(budget=Budget(max_steps=3, max_tokens=100, max_cost_usd=0.01, max_seconds=60), started_at=T0)
    assert ledger.exceeded(T0) is None
    assert "max_seconds 60" in ledger.exceeded(T0 + timedelta(seconds=60))
    ledger.waited_seconds = 3600  # an hour waiting for a person is not the agent's time
    assert ledger.exceeded(T0 + timedelta(seconds=3630)) is None
    ledger.waited_seconds = 0
    ledger.record_llm(
        LlmResponse(
            model="m", text="hi", stop_reason="end_turn", usage=Usage(llm_calls=1, input_tokens=60, output_tokens=40)
        )
    )
    assert "max_tokens 100" in ledger.exceeded(T0)
    ledger.usage = Usage(cost_usd=0.02)
    assert "max_cost_usd" in ledger.exceeded(T0)
    ledger.usage = Usage()
    call = ToolCall(id="1", name="calculator", arguments={"expression": "1+1"})
    ledger.record_tool(call, ToolOutcome(tool_call_id="1", name="calculator", content="2"))
    ledger.record_tool(call, ToolOutcome(tool_call_id="1", name="calculator", content="2"))
    assert "max_steps 3" in ledger.exceeded(T0)
    assert ledger.output_allowance(4096) == 100


def test_tool_checks_name_the_problem():
    assistant, researcher = REGISTRY.agent("assistant"), REGISTRY.agent("researcher")
    assert check_tool_call(REGISTRY, assistant, "calculator", {"expression": "1"}).tool is not None
    assert "Unknown tool 'x'" in check_tool_call(REGISTRY, assistant, "x", {}).error
    assert "read-only" in check_tool_call(REGISTRY, researcher, "write_note", {"title": "a", "body": "b"}).error
    assert "title: Field required" in check_tool_call(REGISTRY, assistant, "write_note", {"body": "b"}).error


def test_notes_write_is_idempotent_per_key(tmp_path):
    store = NoteStore(str(tmp_path / "n.db"))
    first, created = store.write("wf:step-4", "t", "b")
    again, created_again = store.write("wf:step-4", "t", "b")
    assert created and not created_again and first.id == again.id
    assert len(store.all()) == 1
    assert [n.title for n in store.search("B")] == ["t"]


def test_settings_reject_malformed_values():
    assert Settings.from_env({}).task_queue == "agents"
    with pytest.raises(ConfigError, match="AGENT_MODEL"):
        Settings.from_env({"AGENT_MODEL": "claude"})
    with pytest.raises(ConfigError, match="WORKER_MAX_CACHED_WORKFLOWS must be an integer"):
        Settings.from_env({"WORKER_MAX_CACHED_WORKFLOWS": "lots"})


def test_the_calculator_parses_again_past_cpythons_thread_unsafe_ast_check(monkeypatch):
    import ast

    from tools import calculator

    real, failures = ast.parse, [SystemError("AST constructor recursion depth mismatch (before=141, after=221)")]

    def flaky(source, *args, **kwargs):  # what another thread's traceback formatting can cause (gh-106905)
        if failures:
            raise failures.pop()
        return real(source, *args, **kwargs)

    monkeypatch.setattr(calculator.ast, "parse", flaky)
    assert calculator.evaluate("6000 * 0.2") == 1200
    failures.append(SystemError("some other SystemError"))
    with pytest.raises(SystemError, match="some other"):  # only that one error is retried
        calculator.evaluate("1 + 1")
