"""Pinning: what a run records of its agents, the metadata-only registry rebuilt from it, and the spec store."""

from __future__ import annotations

import pytest
from temporalio.exceptions import ApplicationError

from activities.agent_specs import AgentResolver, AgentSpecActivities, SpecStore
from models.agents import AgentRef, PinnedAgents, ResolveAgentsRequest
from models.errors import InvalidInput
from payloads.blobs import LocalBlobStore
from tools.catalog import build_registry
from tools.final_answer import correction as correction_for
from tools.output_check import check_output
from tools.pinning import PLANNER, pin, registry_of
from tools.registry import check_tool_call


def test_a_pin_names_every_tool_with_its_schema_and_policy() -> None:
    pinned = pin(build_registry(), [AgentRef(where="agent", name="assistant")])
    spec = pinned.spec("assistant")
    assert [t.name for t in spec.tools] == ["calculator", "search_notes", "write_note"]
    write_note = spec.tools[2]
    assert (write_note.effect, write_note.requires_approval) == ("write", True)
    assert write_note.input_schema["required"] == ["title", "body"]
    assert pinned.digests == {"assistant": spec.digest()}
    assert len(spec.digest()) == 64


def test_an_unknown_agent_names_the_field_and_the_known_agents() -> None:
    with pytest.raises(InvalidInput, match=r"steps\.1\.agent: unknown agent 'nobody' \(known: analysis, assistant"):
        pin(
            build_registry(),
            [AgentRef(where="steps.0.agent", name="assistant"), AgentRef(where="steps.1.agent", name="nobody")],
        )


def test_the_hybrid_pins_the_planner_and_every_specialist() -> None:
    pinned = pin(build_registry(), [AgentRef(where="agent", name="assistant")], specialists=True)
    assert set(pinned.specs) == {"assistant", PLANNER, "budget", "analysis"}
    assert pinned.spec("budget").output_schema is not None


def test_the_pinned_registry_checks_calls_as_the_worker_would() -> None:
    worker = build_registry()
    pinned = registry_of(pin(worker, [AgentRef(where="agent", name="researcher")]))
    agent, original = pinned.agent("researcher"), worker.agent("researcher")
    for name, arguments in [
        ("calculator", {"expression": "1 + 1"}),
        ("calculator", {"expr": "1"}),
        ("write_note", {"title": "t", "body": "b"}),
        ("shell", {}),
    ]:
        here, there = (
            check_tool_call(pinned, agent, name, arguments),
            check_tool_call(worker, original, name, arguments),
        )
        assert (here.tool is None, here.reason) == (there.tool is None, there.reason)
    refused = check_tool_call(pinned, agent, "calculator", {"expr": "1"})
    assert "expression: Field required" in (refused.error or "") and "expr: Extra inputs" in (refused.error or "")
    assert pinned.tools["calculator"].handler is None  # metadata only: nothing runs inside a workflow


@pytest.mark.parametrize(
    ("text", "ok"),
    [('{"total": 3}', True), ('```json\n{"total": 3}\n```', True), ('{"total": "3"}', False), ("three", False)],
)
def test_an_answer_is_checked_against_the_output_schema(text: str, ok: bool) -> None:
    schema = {"type": "object", "properties": {"total": {"type": "number"}}, "required": ["total"]}
    value, correction = check_output(text, schema)
    assert (correction is None) == ok
    if ok:
        assert value == {"total": 3}
    else:
        assert correction is not None and "Reply with JSON only" in correction_for(correction, schema)


async def test_activities_read_the_spec_the_run_pinned_not_the_workers_current_one(tmp_path) -> None:
    store = SpecStore(LocalBlobStore(tmp_path))
    worker = build_registry()
    pinned: PinnedAgents = await AgentSpecActivities(worker, store).resolve_agents(
        ResolveAgentsRequest(agents=[AgentRef(where="agent", name="assistant")])
    )
    digest = pinned.digests["assistant"]
    worker.agents["assistant"] = worker.agents["assistant"].__class__(
        name="assistant", instructions="changed since", tools=("calculator",)
    )
    fresh = SpecStore(LocalBlobStore(tmp_path))  # another worker: nothing cached, the blob store holds the pin
    agent, tools = await AgentResolver(worker, fresh).resolve("assistant", digest)
    assert agent.instructions == pinned.spec("assistant").instructions != "changed since"
    assert [t.name for t in tools] == ["calculator", "search_notes", "write_note"]
    with pytest.raises(ApplicationError, match="cannot be read from the blob store") as info:
        await fresh.get("0" * 64)
    assert info.value.non_retryable


async def test_resolving_an_unknown_agent_fails_without_retries(tmp_path) -> None:
    activities = AgentSpecActivities(build_registry(), SpecStore(LocalBlobStore(tmp_path)))
    with pytest.raises(ApplicationError, match="agent: unknown agent 'ghost'") as info:
        await activities.resolve_agents(ResolveAgentsRequest(agents=[AgentRef(where="agent", name="ghost")]))
    assert info.value.type == "InvalidInput" and info.value.non_retryable


def test_an_agents_own_tool_call_limit_is_pinned() -> None:
    from tools.registry import AgentProfile

    worker = build_registry()
    worker.add_agent(
        AgentProfile(name="frugal", instructions="Few calls.", tools=("calculator",), max_tool_calls_per_turn=4)
    )
    pinned = pin(worker, [AgentRef(where="agent", name="frugal")])
    assert pinned.spec("frugal").max_tool_calls_per_turn == 4
    assert registry_of(pinned).agent("frugal").max_tool_calls_per_turn == 4
