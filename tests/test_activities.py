"""Activities called directly (no workflow), through Temporal's ActivityEnvironment."""

from __future__ import annotations

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.conversation_store import ConversationStore
from activities.llm import LlmActivities
from activities.providers.anthropic_provider import AnthropicProvider
from activities.run_tool import ToolActivities
from activities.tool_executor import ToolExecutor
from config.settings import Settings
from devstack.fake_anthropic import Fault, Reply
from models.conversation import Conversation, ToolCall
from models.llm import LlmRequest
from models.tooling import ToolInvocation
from payloads.blobs import blob_store
from tests.helpers import resolver_for
from tools.catalog import REGISTRY
from tools.deps import ToolDeps
from tools.notes import NoteStore


@pytest.fixture
def conversations(settings) -> ConversationStore:
    """The store the worker shares between call_llm and run_tool."""
    return ConversationStore(blob_store(settings.blobs, settings.payloads), settings.tool_output_max_chars)


async def test_write_note_activity_twice_with_one_key_stores_one_note(settings, conversations):
    tools = ToolActivities(ToolExecutor(REGISTRY, ToolDeps.from_settings(settings)), conversations)
    call = ToolCall(id="toolu_1", name="write_note", arguments={"title": "Budget", "body": "500/month"})
    invocation = ToolInvocation(agent="assistant", call=call, idempotency_key="wf-1:step-4:toolu_1")
    env = ActivityEnvironment()
    first = await env.run(tools.run_tool, invocation)
    retry = await env.run(tools.run_tool, invocation)  # what a retry after a lost completion does
    assert first.content == "Saved note #1 'Budget'."
    assert retry.content == "Note #1 'Budget' was already saved."
    assert len(NoteStore(settings.notes_db).all()) == 1


async def test_call_llm_sends_agent_instructions_and_reports_usage(settings, conversations, fake_llm):
    fake_llm.push(Reply(text="hello", output_tokens=7))
    llm = LlmActivities(
        settings, resolver_for(REGISTRY), {"anthropic": AnthropicProvider(settings.anthropic)}, conversations
    )
    response = await ActivityEnvironment().run(
        llm.call_llm,
        LlmRequest(agent="assistant", model="anthropic:claude-haiku-5-5", conversation=Conversation.start("hi")),
    )
    assert response.text == "hello" and response.stop_reason == "end_turn"
    assert response.usage.output_tokens == 7 and response.usage.llm_calls == 1
    [sent] = fake_llm.requests
    assert sent.body["model"] == "claude-haiku-5-5"
    assert sent.body["system"] == REGISTRY.agent("assistant").instructions
    assert "x-api-key" not in sent.headers  # the recorder never keeps credentials


async def test_call_llm_uses_agent_model_when_the_input_names_none(settings, conversations, fake_llm, monkeypatch):
    fake_llm.push(Reply(text="ok"))
    llm = LlmActivities(
        settings, resolver_for(REGISTRY), {"anthropic": AnthropicProvider(settings.anthropic)}, conversations
    )
    response = await ActivityEnvironment().run(
        llm.call_llm, LlmRequest(agent="assistant", conversation=Conversation.start("hi"))
    )
    assert response.model == settings.default_model == "anthropic:claude-sonnet-5-5"


async def test_call_llm_raises_classified_errors(settings, conversations, fake_llm):
    fake_llm.push(Fault(429, "slow down", retry_after=3), Fault(403, "no access"))
    llm = LlmActivities(
        settings, resolver_for(REGISTRY), {"anthropic": AnthropicProvider(settings.anthropic)}, conversations
    )
    request = LlmRequest(agent="assistant", conversation=Conversation.start("hi"))
    with pytest.raises(ApplicationError) as limited:
        await ActivityEnvironment().run(llm.call_llm, request)
    assert not limited.value.non_retryable and limited.value.next_retry_delay.total_seconds() == 3
    with pytest.raises(ApplicationError) as denied:
        await ActivityEnvironment().run(llm.call_llm, request)
    assert denied.value.non_retryable and "HTTP 403: no access" in str(denied.value)


async def test_missing_api_key_is_a_non_retryable_configuration_error(settings, conversations, monkeypatch):
    monkeypatch.delenv("ANTHROPIC_API_KEY")
    llm = LlmActivities(
        settings, resolver_for(REGISTRY), {"anthropic": AnthropicProvider(Settings.from_env().anthropic)}, conversations
    )
    with pytest.raises(ApplicationError, match="ANTHROPIC_API_KEY is not set") as err:
        await ActivityEnvironment().run(
            llm.call_llm, LlmRequest(agent="assistant", conversation=Conversation.start("hi"))
        )
    assert err.value.non_retryable
