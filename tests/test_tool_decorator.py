"""`@tool`: schemas from type hints, ToolContext injection, sync functions in a thread, clear declaration errors."""

from __future__ import annotations

import threading
from typing import Annotated

import pytest
from pydantic import BaseModel, Field

from models.errors import ToolInputError
from tests.fixtures.agents.support_tools import log_contact, order_total, shipping_days
from tools import ToolContext, ToolDeclarationError, tool
from tools.calculator import calculator
from tools.catalog import REGISTRY
from tools.deps import ToolDeps
from tools.notes import NoteStore
from tools.registry import CallInfo, Tool, ToolArgumentsInvalid


@pytest.fixture
def deps(tmp_path) -> ToolDeps:
    """Tool dependencies with a notes file of this test's own."""
    return ToolDeps(notes=NoteStore(str(tmp_path / "notes.db")))


async def _run(declared: Tool, deps: ToolDeps, key: str = "wf:1:call", agent: str = "tester", **arguments) -> str:
    assert declared.handler is not None
    return await declared.handler(declared.validate(arguments), deps, CallInfo(key, agent=agent))


def test_name_description_and_schema_come_from_the_function():
    assert isinstance(order_total, Tool)
    assert order_total.name == "order_total" and order_total.description == "Total of one order, in euros."
    schema = order_total.input_schema()
    assert schema["properties"]["order_id"]["type"] == "string"
    assert schema["properties"]["include_tax"] == {"default": True, "title": "Include Tax", "type": "boolean"}
    assert schema["required"] == ["order_id"] and schema["additionalProperties"] is False
    assert order_total.effect == "read" and not order_total.requires_approval
    assert order_total.timeout.total_seconds() == 30 and order_total.retry.maximum_attempts == 3


def test_annotated_fields_and_policy_arguments_are_honoured():
    country = shipping_days.input_schema()["properties"]["country"]
    assert country["description"] == "ISO 3166 country code, e.g. 'DE'"
    assert country["minLength"] == 2 and country["maxLength"] == 2
    assert shipping_days.timeout.total_seconds() == 5 and shipping_days.retry.maximum_attempts == 2
    with pytest.raises(ToolArgumentsInvalid, match="country"):
        shipping_days.validate({"country": "DEU"})


def test_extra_keys_are_refused():
    with pytest.raises(ToolArgumentsInvalid, match="surprise: Extra inputs are not permitted"):
        order_total.validate({"order_id": "A1", "surprise": 1})


async def test_tool_context_is_injected_and_not_in_the_schema(deps):
    assert list(log_contact.input_schema()["properties"]) == ["customer_id"]
    assert log_contact.effect == "write" and log_contact.requires_approval
    out = await _run(log_contact, deps, key="wf:7:c1", agent="support", customer_id="C1")
    assert out == '{"customer_id": "C1", "key": "wf:7:c1", "agent": "support"}'


async def test_sync_functions_run_in_a_thread_and_results_become_json(deps):
    out = await _run(shipping_days, deps, country="de")
    assert '"country": "DE", "days": 2' in out
    assert threading.current_thread().name not in out  # ran in a worker thread, not on the event loop
    assert await _run(order_total, deps, order_id="A1", include_tax=False) == "42.50 EUR"

    @tool(effect="read")
    def as_model() -> Answer:
        """A pydantic model."""
        return Answer(value=3)

    @tool(effect="read")
    async def as_number() -> float:
        """A number."""
        return 2.5

    @tool(effect="read", name="listing")
    def as_list() -> list[int]:
        """A list."""
        return [1, 2]

    assert await _run(as_model, deps) == '{"value": 3}'
    assert await _run(as_number, deps) == "2.5"
    assert as_list.name == "listing" and await _run(as_list, deps) == "[1, 2]"


class Answer(BaseModel):
    """A structured tool result."""

    value: int


class Opaque:
    """Not something pydantic can describe."""


def _no_doc(x: int) -> str:
    return ""


def _no_hint(x) -> str:  # type: ignore[no-untyped-def]
    """Missing a hint."""
    return ""


def _opaque(x: Opaque) -> str:
    """Takes a class pydantic cannot describe."""
    return ""


def _varargs(*xs: int) -> str:
    """Varargs."""
    return ""


def _fine(x: int) -> str:
    """Fine."""
    return ""


@pytest.mark.parametrize(
    ("fn", "options", "message"),
    [
        (_no_doc, {}, "_no_doc: add a docstring"),
        (_no_hint, {}, "_no_hint: parameter 'x' needs a type hint"),
        (_opaque, {}, "_opaque: parameter 'x': type"),
        (_varargs, {}, "_varargs: parameter 'xs': only named parameters are supported"),
        (_fine, {"effect": "delete"}, "_fine: effect must be 'read' or 'write', got 'delete'"),
        (_fine, {"timeout_seconds": 0}, "_fine: timeout_seconds must be a positive number, got 0"),
        (_fine, {"max_attempts": 0}, "_fine: max_attempts must be an integer of at least 1"),
        (_fine, {"name": "has space"}, "_fine: tool name 'has space' must match"),
    ],
)
def test_bad_declarations_name_the_function(fn, options, message):
    with pytest.raises(ToolDeclarationError) as refused:
        tool(**options)(fn)
    assert message in str(refused.value) and "test_tool_decorator" in str(refused.value)


def test_bare_decorator_and_context_parameter_anywhere():
    @tool
    def plain(context: ToolContext, count: Annotated[int, Field(ge=1)] = 1) -> str:
        """Plain."""
        return str(count)

    assert plain.effect == "write" and plain.input_schema()["properties"]["count"]["minimum"] == 1


def test_built_in_tools_keep_names_descriptions_and_schemas():
    assert REGISTRY.tools["calculator"] is calculator
    assert calculator.input_schema()["properties"]["expression"]["maxLength"] == 500
    write = REGISTRY.tools["write_note"]
    assert write.effect == "write" and write.requires_approval
    assert write.input_schema()["required"] == ["title", "body"]
    search = REGISTRY.tools["search_notes"]
    assert search.description == "Search saved notes by text. Returns matching notes with their ids."
    assert REGISTRY.agent("budget").output_schema["title"] == "BudgetPlan"


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("10.0**400", "out of range"),
        ("1/0", "division by zero"),
        ("(10**999)*1.5", "out of range"),
        ("1 % 0.0", "zero"),
    ],
)
async def test_calculator_numeric_errors_are_told_to_the_model(deps, expression, problem):
    with pytest.raises(ToolInputError, match=problem):
        await _run(calculator, deps, expression=expression)


async def test_notes_tools_use_the_idempotency_key(deps):
    first = await _run(REGISTRY.tools["write_note"], deps, key="k1", title="t", body="b")
    again = await _run(REGISTRY.tools["write_note"], deps, key="k1", title="t", body="b")
    assert first == "Saved note #1 't'." and again == "Note #1 't' was already saved."
    assert "#1 t: b" in await _run(REGISTRY.tools["search_notes"], deps, query="b")
