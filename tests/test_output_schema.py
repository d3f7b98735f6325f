"""An agent's output_schema in both black-box engines: one correction, then AgentOutputInvalid (real SDKs, fake servers)."""

from __future__ import annotations

import json

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.agent_specs import AgentResolver, SpecStore
from activities.black_box.claude_engine import ClaudeAgentEngine
from activities.black_box.invoke_agent import BlackBoxActivities
from activities.black_box.openai_engine import JsonSchemaOutput, OpenAIAgentEngine
from activities.providers.anthropic_provider import AnthropicProvider
from activities.providers.openai_provider import OpenAIProvider
from activities.tool_executor import ToolExecutor
from devstack.fake_anthropic import Reply
from devstack.fake_openai import FakeOpenAI
from models.blackbox import InvokeAgentRequest
from payloads.blobs import LocalBlobStore
from tools.catalog import build_registry
from tools.deps import ToolDeps
from tools.registry import AgentProfile

SCHEMA = {
    "type": "object",
    "properties": {"status": {"type": "string"}, "total": {"type": "number"}},
    "required": ["status", "total"],
}
VALID = json.dumps({"status": "shipped", "total": 42.5})


@pytest.fixture
def fake_openai(monkeypatch):
    """A scripted fake OpenAI server with the SDK aimed at it."""
    with FakeOpenAI() as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.url)
        yield fake


def _activities(settings, monkeypatch):
    registry = build_registry()
    registry.add_agent(
        AgentProfile(name="status", instructions="Say the status.", tools=("calculator",), output_schema=SCHEMA)
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
