"""Errors inside a stream that answered HTTP 200, and streams cut before their final event (issue 28).

The real `anthropic` / `openai` / Agents SDK clients stream from the fakes over HTTP: an in-stream error event
is classified by its error type (not the 200), a cut stream is a retryable connection error, on both providers
(`call_llm`, pattern B) and both black-box engines (`invoke_agent`, pattern A).
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.black_box.claude_engine import ClaudeAgentEngine
from activities.black_box.invoke_agent import BlackBoxActivities
from activities.black_box.openai_engine import OpenAIAgentEngine
from activities.conversation_store import ConversationStore
from activities.llm import LlmActivities
from activities.providers.anthropic_provider import AnthropicProvider, count_input_tokens
from activities.providers.errors import classify
from activities.providers.openai_provider import OpenAIProvider
from activities.tool_executor import ToolExecutor
from config.sections import OpenAISettings
from devstack.fake_anthropic import Fault, Reply, StreamError, Truncated
from devstack.fake_openai import FakeOpenAI
from models.blackbox import InvokeAgentRequest
from models.budget import Allowance, estimate_tokens
from models.conversation import Conversation
from models.llm import LlmRequest
from payloads.blobs import blob_store
from tests.conftest import workflow_id
from tests.helpers import resolver_for
from tests.test_blackbox import BUDGET_ARGS, budget_answer
from tools.catalog import REGISTRY
from tools.deps import ToolDeps

CLAUDE = "anthropic:claude-sonnet-5-5"
GPT = "openai:gpt-5"
RETRIED_ANTHROPIC = ["overloaded_error", "api_error", "rate_limit_error", "timeout_error"]
REFUSED_ANTHROPIC = ["invalid_request_error", "authentication_error", "permission_error"]
CUTS = [
    pytest.param(Truncated(), id="connection-dropped"),  # the socket closes before the last event
    pytest.param(Truncated(clean=True), id="body-ended"),  # the body ends properly, the last event missing
    pytest.param(Truncated(cut=100, clean=True), id="nothing-sent"),  # not even the stream's first event
]


@pytest.fixture
def fake_openai(monkeypatch):
    """A scripted fake OpenAI server with the SDK aimed at it."""
    with FakeOpenAI() as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.url)
        yield fake


@pytest.fixture
def conversations(settings) -> ConversationStore:
    return ConversationStore(blob_store(settings.blobs, settings.payloads), settings.tool_output_max_chars)


def openai_provider(fake: FakeOpenAI) -> OpenAIProvider:
    """Aimed at `fake` whatever order the fixtures ran in."""
    return OpenAIProvider(OpenAISettings(api_key="test-key-not-real", base_url=fake.url))


async def call_llm_error(settings, conversations, provider: str, client, model: str) -> ApplicationError:
    """The error one `call_llm` attempt raises (a fresh activity object: no provider cooldown carried over)."""
    llm = LlmActivities(settings, resolver_for(REGISTRY), {provider: client}, conversations)
    request = LlmRequest(agent="assistant", model=model, conversation=Conversation.start("hi"))
    with pytest.raises(ApplicationError) as raised:
        await ActivityEnvironment().run(llm.call_llm, request)
    return raised.value


def black_box(settings, engines) -> BlackBoxActivities:
    return BlackBoxActivities(
        settings, resolver_for(REGISTRY), engines, ToolExecutor(REGISTRY, ToolDeps.from_settings(settings))
    )


async def invoke_agent_error(settings, engines, model: str) -> ApplicationError:
    """The error one `invoke_agent` attempt raises."""
    request = InvokeAgentRequest(agent="assistant", prompt="hi", model=model)
    with pytest.raises(ApplicationError) as raised:
        await ActivityEnvironment().run(black_box(settings, engines).invoke_agent, request)
    return raised.value


def claude_engines(settings):
    return {"anthropic": ClaudeAgentEngine(AnthropicProvider(settings.anthropic), REGISTRY)}


def agents_sdk_engines(fake: FakeOpenAI):
    return {"openai": OpenAIAgentEngine(openai_provider(fake), REGISTRY)}


def assert_retried(error: ApplicationError, type_: str, kind: str | None = None) -> None:
    assert not error.non_retryable, error
    assert error.type == type_, error
    assert kind is None or kind in error.message, error


def assert_refused(error: ApplicationError, type_: str, kind: str) -> None:
    assert error.non_retryable, error
    assert error.type == type_ and kind in error.message and "not retried" in error.message, error


# --- the policy ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kinds", "status", "retried"),
    [
        (["overloaded_error"], 200, True),
        (["invalid_request_error"], 200, False),
        (["some_future_error"], 200, True),  # accepted, then broken: the provider's trouble, most likely
        ([], 200, True),
        (["rate_limit_exceeded", "requests"], 429, True),  # OpenAI: the code is known, the type is not
        (["insufficient_quota", "insufficient_quota"], 429, False),  # a 429 that waiting does not cure
        (["overloaded_error"], 529, True),
        (["some_future_error"], 400, False),  # an unknown type: the status decides
        (["some_future_error"], 503, True),
        ([None, "server_error"], 500, True),
    ],
)
def test_the_error_type_decides_and_the_status_only_without_a_known_one(kinds, status, retried):
    assert classify(kinds, status)[1] is retried


# --- Anthropic through call_llm (pattern B) -------------------------------------------------------------


@pytest.mark.parametrize("kind", RETRIED_ANTHROPIC)
async def test_anthropic_in_stream_error_is_retried(settings, conversations, fake_llm, kind):
    fake_llm.push(StreamError(kind, "Overloaded", text="Let me think"))  # after some text deltas
    error = await call_llm_error(settings, conversations, "anthropic", AnthropicProvider(settings.anthropic), CLAUDE)
    assert_retried(error, "AnthropicStreamError", kind)
    assert "after HTTP 200: Overloaded" in error.message
    assert error.next_retry_delay is None  # the provider named no wait: the retry policy's own backoff
    assert fake_llm.requests[0].served == "stream_error"


async def test_anthropic_in_stream_rate_limit_waits_the_retry_after(settings, conversations, fake_llm):
    fake_llm.push(StreamError("rate_limit_error", "Slow down", retry_after=4))
    error = await call_llm_error(settings, conversations, "anthropic", AnthropicProvider(settings.anthropic), CLAUDE)
    assert_retried(error, "AnthropicStreamError", "rate_limit_error")
    assert error.next_retry_delay == timedelta(seconds=4)


@pytest.mark.parametrize("kind", REFUSED_ANTHROPIC)
async def test_anthropic_in_stream_request_error_is_not_retried(settings, conversations, fake_llm, kind):
    fake_llm.push(StreamError(kind, "refused", retry_after=4))
    error = await call_llm_error(settings, conversations, "anthropic", AnthropicProvider(settings.anthropic), CLAUDE)
    assert_refused(error, "AnthropicStreamError", kind)
    assert error.next_retry_delay is None


async def test_anthropic_unknown_in_stream_error_is_retried(settings, conversations, fake_llm):
    fake_llm.push(StreamError("some_future_error", "new"))
    error = await call_llm_error(settings, conversations, "anthropic", AnthropicProvider(settings.anthropic), CLAUDE)
    assert_retried(error, "AnthropicStreamError", "some_future_error")


@pytest.mark.parametrize("cut", CUTS)
async def test_anthropic_cut_stream_is_a_retried_connection_error(settings, conversations, fake_llm, cut):
    fake_llm.push(cut)
    error = await call_llm_error(settings, conversations, "anthropic", AnthropicProvider(settings.anthropic), CLAUDE)
    assert_retried(error, "AnthropicConnectionError")


async def test_anthropic_count_tokens_of_another_shape_falls_back_to_the_estimate(settings, fake_llm):
    fake_llm.count_tokens_reply = {"type": "token_count", "tokens": 12}
    conversation = Conversation.start("hi")
    counted = await count_input_tokens(
        AnthropicProvider(settings.anthropic), model=CLAUDE, system="be brief", conversation=conversation, tools=[]
    )
    wire = {
        "model": "claude-sonnet-5-5",
        "system": "be brief",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
    }
    assert counted == estimate_tokens(wire) and fake_llm.counted


# --- OpenAI Responses through call_llm (pattern B) ------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(StreamError("server_error", text="Let me think"), id="error-server_error"),
        pytest.param(StreamError("rate_limit_exceeded"), id="error-rate_limit_exceeded"),
        pytest.param(StreamError("server_error", failed=True), id="failed-server_error"),
        pytest.param(StreamError("rate_limit_exceeded", failed=True), id="failed-rate_limit_exceeded"),
        pytest.param(StreamError("vector_store_timeout", failed=True), id="failed-vector_store_timeout"),
        pytest.param(StreamError("some_future_code"), id="error-unknown-code"),
    ],
)
async def test_openai_in_stream_error_is_retried(settings, conversations, fake_openai, fault):
    fake_openai.push(fault)
    error = await call_llm_error(settings, conversations, "openai", openai_provider(fake_openai), GPT)
    assert_retried(error, "OpenaiStreamError", fault.kind)
    assert fake_openai.requests[0].served == "stream_error"


async def test_openai_in_stream_rate_limit_waits_the_retry_hint(settings, conversations, fake_openai):
    fake_openai.push(
        StreamError("rate_limit_exceeded", "Rate limit reached. Please try again in 1.5s.", failed=True),
        StreamError("rate_limit_exceeded", "Rate limit reached.", retry_after=3),
    )
    in_words = await call_llm_error(settings, conversations, "openai", openai_provider(fake_openai), GPT)
    assert_retried(in_words, "OpenaiStreamError", "rate_limit_exceeded")
    assert in_words.next_retry_delay == timedelta(seconds=1.5)
    in_header = await call_llm_error(settings, conversations, "openai", openai_provider(fake_openai), GPT)
    assert in_header.next_retry_delay == timedelta(seconds=3)


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(StreamError("invalid_request_error"), id="error-invalid_request_error"),
        pytest.param(StreamError("insufficient_quota"), id="error-insufficient_quota"),
        pytest.param(StreamError("invalid_prompt", failed=True), id="failed-invalid_prompt"),
        pytest.param(StreamError("invalid_image_url", failed=True), id="failed-invalid_image_url"),
    ],
)
async def test_openai_in_stream_request_error_is_not_retried(settings, conversations, fake_openai, fault):
    fake_openai.push(fault)
    error = await call_llm_error(settings, conversations, "openai", openai_provider(fake_openai), GPT)
    assert_refused(error, "OpenaiStreamError", fault.kind)


async def test_openai_quota_error_response_is_not_retried_despite_its_429(settings, conversations, fake_openai):
    fake_openai.push(Fault(429, "You exceeded your current quota", retry_after=5, kind="insufficient_quota"))
    error = await call_llm_error(settings, conversations, "openai", openai_provider(fake_openai), GPT)
    assert_refused(error, "OpenaiHttpError429", "insufficient_quota")
    assert error.next_retry_delay is None


@pytest.mark.parametrize("cut", CUTS)
async def test_openai_cut_stream_is_a_retried_connection_error(settings, conversations, fake_openai, cut):
    fake_openai.push(cut)
    error = await call_llm_error(settings, conversations, "openai", openai_provider(fake_openai), GPT)
    assert_retried(error, "OpenaiConnectionError")


# --- the Claude black box (pattern A, through AnthropicProvider) ----------------------------------------


async def test_claude_black_box_in_stream_overload_is_retried(settings, fake_llm):
    fake_llm.push(StreamError("overloaded_error", "Overloaded", text="Let me"))
    error = await invoke_agent_error(settings, claude_engines(settings), CLAUDE)
    assert_retried(error, "AnthropicStreamError", "overloaded_error")


async def test_claude_black_box_in_stream_request_error_is_not_retried(settings, fake_llm):
    fake_llm.push(StreamError("invalid_request_error", "bad"))
    error = await invoke_agent_error(settings, claude_engines(settings), CLAUDE)
    assert_refused(error, "AnthropicStreamError", "invalid_request_error")


@pytest.mark.parametrize("cut", CUTS)
async def test_claude_black_box_cut_stream_is_retried(settings, fake_llm, cut):
    fake_llm.push(cut)
    error = await invoke_agent_error(settings, claude_engines(settings), CLAUDE)
    assert_retried(error, "AnthropicConnectionError")


async def test_claude_black_box_survives_count_tokens_of_another_shape(settings, fake_llm):
    fake_llm.count_tokens_reply = {"tokens": 12}  # HTTP 200, no `input_tokens`
    fake_llm.push(Reply(text="A plain answer."))
    allowance = Allowance(max_tokens=100_000, max_cost_usd=5.0, max_steps=5)  # each call is counted first
    request = InvokeAgentRequest(agent="assistant", prompt="hi", model=CLAUDE, allowance=allowance)
    result = await ActivityEnvironment().run(black_box(settings, claude_engines(settings)).invoke_agent, request)
    assert result.output == "A plain answer." and fake_llm.counted


# --- the Agents SDK black box (pattern A, Runner.run_streamed) ------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(StreamError("server_error", text="Let me"), id="error-server_error"),
        pytest.param(StreamError("rate_limit_exceeded", failed=True), id="failed-rate_limit_exceeded"),
    ],
)
async def test_agents_sdk_black_box_in_stream_error_is_retried(settings, fake_openai, fault):
    fake_openai.push(fault)
    error = await invoke_agent_error(settings, agents_sdk_engines(fake_openai), GPT)
    assert_retried(error, "OpenaiStreamError", fault.kind)


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(StreamError("invalid_request_error"), id="error-invalid_request_error"),
        pytest.param(StreamError("invalid_prompt", failed=True), id="failed-invalid_prompt"),
    ],
)
async def test_agents_sdk_black_box_in_stream_request_error_is_not_retried(settings, fake_openai, fault):
    fake_openai.push(fault)
    error = await invoke_agent_error(settings, agents_sdk_engines(fake_openai), GPT)
    assert_refused(error, "OpenaiStreamError", fault.kind)


@pytest.mark.parametrize("cut", CUTS)
async def test_agents_sdk_black_box_cut_stream_is_retried(settings, fake_openai, cut):
    fake_openai.push(cut)
    error = await invoke_agent_error(settings, agents_sdk_engines(fake_openai), GPT)
    assert_retried(error, "OpenaiConnectionError")


# --- whole runs: the first attempt meets the error, the retry completes ----------------------------------


async def run_workflow(client, queue, workflow, payload, prefix):
    """The run's result, and the failure type each retried activity attempt reported for its predecessor."""
    handle = await client.start_workflow(workflow, payload, id=workflow_id(prefix), task_queue=queue)
    result = await handle.result()
    history = await handle.fetch_history()
    retried = [
        # A failure that is not the activity's own (a timeout) shows its message: "activity Heartbeat timeout".
        (e.activity_task_started_event_attributes.attempt, failure.application_failure_info.type or failure.message)
        for e in history.events
        if e.HasField("activity_task_started_event_attributes")
        and (failure := e.activity_task_started_event_attributes.last_failure).message
    ]
    return result, retried


async def test_agent_loop_completes_after_an_in_stream_overload(client, worker, fake_llm):
    fake_llm.push(StreamError("overloaded_error", "Overloaded", text="Let me"), Reply(text="fine"))
    result, retried = await run_workflow(
        client, worker.task_queue, "AgentLoopWorkflow", {"prompt": "hi"}, "stream-err-b"
    )
    assert result["status"] == "completed" and result["output"] == "fine", result
    assert retried == [(2, "AnthropicStreamError")]  # one call_llm: its second attempt, after the overload
    assert [r.served for r in fake_llm.requests] == ["stream_error", "reply"]


async def test_claude_black_box_completes_after_an_in_stream_overload(client, worker, fake_llm):
    fake_llm.push(StreamError("overloaded_error", "Overloaded"), Reply(text="A plain answer."))
    payload = {"agent": "assistant", "prompt": "hi", "model": CLAUDE}
    result, retried = await run_workflow(client, worker.task_queue, "BlackBoxAgentWorkflow", payload, "stream-err-ac")
    assert result["status"] == "completed" and result["output"] == "A plain answer.", result
    assert retried == [(2, "AnthropicStreamError")]
    assert [r.served for r in fake_llm.requests] == ["stream_error", "reply"]


async def test_agents_sdk_black_box_completes_after_a_failed_response(client, fake_openai, worker):
    fake_openai.push(
        StreamError("server_error", "The server had an error", failed=True),
        Reply(tool_calls=[("calculate_budget", BUDGET_ARGS)]),
        Reply(text=budget_answer()),
    )
    payload = {"agent": "budget", "prompt": "I earn 5000 a month.", "model": GPT}
    result, retried = await run_workflow(client, worker.task_queue, "BlackBoxAgentWorkflow", payload, "stream-err-ao")
    assert result["status"] == "completed", result
    assert retried == [(2, "OpenaiStreamError")]  # not an output the agent got wrong: the provider's failure
    output = result["output"]
    assert (json.loads(output) if isinstance(output, str) else output) == json.loads(budget_answer())
    assert [r.served for r in fake_openai.requests] == ["stream_error", "reply", "reply"]
