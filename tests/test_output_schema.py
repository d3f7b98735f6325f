"""An agent's output_schema in both black-box engines: one correction, then AgentOutputInvalid (real SDKs, fake servers).

A schema that cannot check any answer (a dangling `$ref`, a `$ref` loop) is `OutputSchemaUnusable` wherever it
is used: a run failure, never another exception (which, raised in workflow code, would wedge the run).
"""

from __future__ import annotations

import json

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.agent_specs import AgentResolver, SpecStore
from activities.black_box.claude_engine import ClaudeAgentEngine
from activities.black_box.invoke_agent import BlackBoxActivities
from activities.black_box.openai_engine import OpenAIAgentEngine
from activities.black_box.openai_output import JsonSchemaOutput
from activities.providers.anthropic_provider import AnthropicProvider
from activities.providers.openai_provider import OpenAIProvider
from activities.tool_executor import ToolExecutor
from devstack.fake_anthropic import Reply
from devstack.fake_openai import FakeOpenAI
from models.blackbox import InvokeAgentRequest
from models.errors import OutputSchemaUnusable
from payloads.blobs import LocalBlobStore
from tools.catalog import build_registry
from tools.deps import ToolDeps
from tools.output_check import check_output
from tools.registry import AgentProfile

SCHEMA = {
    "type": "object",
    "properties": {"status": {"type": "string"}, "total": {"type": "number"}},
    "required": ["status", "total"],
}
VALID = json.dumps({"status": "shipped", "total": 42.5})
DANGLING = {"type": "object", "properties": {"status": {"$ref": "#/$defs/status"}}}


@pytest.fixture
def fake_openai(monkeypatch):
    """A scripted fake OpenAI server with the SDK aimed at it."""
    with FakeOpenAI() as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.url)
        yield fake


def _activities(settings, monkeypatch, schema=SCHEMA):
    registry = build_registry()
    registry.add_agent(
        AgentProfile(name="status", instructions="Say the status.", tools=("calculator",), output_schema=schema)
    )
    executor = ToolExecutor(registry, ToolDeps.from_settings(settings))
    engines = {
        "anthropic": ClaudeAgentEngine(AnthropicProvider(settings.anthropic), registry),
        "openai": OpenAIAgentEngine(OpenAIProvider(settings.openai), registry),
    }
    resolver = AgentResolver(registry, SpecStore(LocalBlobStore(settings.blobs.dir)))
    return BlackBoxActivities(settings, resolver, engines, executor)


@pytest.mark.parametrize("model", ["anthropic:claude-sonnet-5-5", "openai:gpt-5"])
async def test_invalid_answer_goes_back_once_then_validates(model, fake_llm, fake_openai, settings, monkeypatch):
    fake = fake_llm if model.startswith("anthropic") else fake_openai
    fake.push(Reply(text='{"status": "shipped"}'), Reply(text=VALID))
    activities = _activities(settings, monkeypatch)
    result = await ActivityEnvironment().run(
        activities.invoke_agent, InvokeAgentRequest(agent="status", prompt="Order A1?", model=model)
    )
    assert result.output == {"status": "shipped", "total": 42.5} and result.turns == 2
    retry = json.dumps(fake.requests[1].body)
    assert "does not match the required output schema" in retry and "'total' is a required property" in retry


@pytest.mark.parametrize("model", ["anthropic:claude-sonnet-5-5", "openai:gpt-5"])
async def test_second_invalid_answer_fails_non_retryably(model, fake_llm, fake_openai, settings, monkeypatch):
    fake = fake_llm if model.startswith("anthropic") else fake_openai
    fake.push(Reply(text="not json at all"), Reply(text='{"status": 3, "total": 1}'))
    activities = _activities(settings, monkeypatch)
    with pytest.raises(ApplicationError) as failed:
        await ActivityEnvironment().run(
            activities.invoke_agent, InvokeAgentRequest(agent="status", prompt="Order A1?", model=model)
        )
    assert failed.value.type == "AgentOutputInvalid" and failed.value.non_retryable
    assert (
        "agent 'status' answered twice with output that does not match its output_schema: status: 3 is not of type 'string'"
        in str(failed.value)
    )


def test_agents_sdk_strict_mode_only_when_the_schema_allows_it():
    assert not JsonSchemaOutput("a", SCHEMA).is_strict_json_schema()  # no additionalProperties: false
    strict = {**SCHEMA, "additionalProperties": False}
    assert JsonSchemaOutput("a", strict).is_strict_json_schema()


@pytest.mark.parametrize(
    "schema",
    [DANGLING, {"$ref": "#"}, {"$ref": "http://127.0.0.1:9/order.json"}],
    ids=["dangling", "loop", "remote"],
)
def test_a_schema_that_cannot_check_an_answer_raises_only_the_run_failure(schema):
    with pytest.raises(OutputSchemaUnusable) as unusable:  # "remote": never fetched, so no URLError either
        check_output('{"status": "shipped"}', schema, "status")
    assert unusable.value.type == "OutputSchemaUnusable" and unusable.value.non_retryable
    assert "the output_schema of agent 'status' cannot check an answer (" in str(unusable.value)


def test_answers_too_deep_to_read_or_check_go_back_to_the_model():
    deep = "[" * 100_000 + "]" * 100_000
    assert check_output(deep, {}) == (None, "JSON nested too deeply to read; answer with flatter JSON")
    value, problems = check_output("[" * 500 + "]" * 500, {"type": "array", "items": {"$ref": "#"}})
    assert value is None and problems is not None and "nested 499 levels deep, too deep to check" in problems


@pytest.mark.parametrize("model", ["anthropic:claude-sonnet-5-5", "openai:gpt-5"])
async def test_a_dangling_ref_fails_the_black_box_at_once(model, fake_llm, fake_openai, settings, monkeypatch):
    fake = fake_llm if model.startswith("anthropic") else fake_openai
    fake.push(Reply(text=VALID))
    activities = _activities(settings, monkeypatch, schema=DANGLING)
    with pytest.raises(ApplicationError) as failed:
        await ActivityEnvironment().run(
            activities.invoke_agent, InvokeAgentRequest(agent="status", prompt="Order A1?", model=model)
        )
    assert failed.value.type == "OutputSchemaUnusable" and failed.value.non_retryable
    assert "a $ref does not resolve: '/$defs/status'" in str(failed.value)
    assert len(fake.requests) == 1  # not sent back to the model: no answer could pass
