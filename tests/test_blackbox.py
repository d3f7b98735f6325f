"""Pattern A: `invoke_agent` and `BlackBoxAgentWorkflow`, real SDKs against scripted fake servers."""

from __future__ import annotations

import json
import socket

import pytest
from temporalio.testing import ActivityEnvironment

from activities.providers.openai_provider import OpenAIProvider
from devstack.fake_anthropic import Reply
from devstack.fake_openai import FakeOpenAI
from tests.conftest import workflow_id
from tests.helpers import eventually, resolver_for
from tools.finance import future_value, split_budget

OPENAI_MODEL = "openai:gpt-5"
CLAUDE_MODEL = "anthropic:claude-sonnet-5-5"
BUDGET_ARGS = {"monthly_income": 5000}
SAVINGS_ARGS = {"monthly_amount": 1000, "years": 10, "annual_rate": 0.05}


def budget_answer() -> str:
    return json.dumps({**split_budget(5000), "advice": "Automate the 1000 of savings."})


def analysis_answer() -> str:
    value = future_value(1000, 10, 0.05)
    return json.dumps({**SAVINGS_ARGS, "projected_value": value, "summary": f"About {value:.0f} after 10 years."})


def specialist_responder(delay: float = 0.0):
    """Answers either specialist from what the request offers: a tool call first, then the final JSON."""

    def respond(body: dict) -> Reply:
        items = body.get("input") if "input" in body else body.get("messages")
        answered = any(
            isinstance(i, dict) and (i.get("type") == "function_call_output" or i.get("role") == "tool") for i in items
        )
        tools = [t.get("name") or t["function"]["name"] for t in body.get("tools", [])]
        if "calculate_budget" in tools:
            return (
                Reply(text=budget_answer(), delay=delay)
                if answered
                else Reply(tool_calls=[("calculate_budget", BUDGET_ARGS)], delay=delay)
            )
        return (
            Reply(text=analysis_answer(), delay=delay)
            if answered
            else Reply(tool_calls=[("project_savings", SAVINGS_ARGS)], delay=delay)
        )

    return respond


@pytest.fixture
def fake_openai(monkeypatch):
    """A scripted fake OpenAI server with the SDK aimed at it."""
    with FakeOpenAI() as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.url)
        yield fake


async def run(client, queue, payload, prefix="blackbox"):
    handle = await client.start_workflow("BlackBoxAgentWorkflow", payload, id=workflow_id(prefix), task_queue=queue)
    return handle, await handle.result()


async def activity_spans(handle) -> list[tuple[float, float, int]]:
    """(started, completed, attempt) of each invoke_agent, from the event history."""
    history = await handle.fetch_history()
    started: dict[int, tuple[float, int]] = {}
    spans = []
    for e in history.events:
        if e.HasField("activity_task_started_event_attributes"):
            a = e.activity_task_started_event_attributes
            started[a.scheduled_event_id] = (e.event_time.ToDatetime().timestamp(), a.attempt)
        if e.HasField("activity_task_completed_event_attributes"):
            begin, attempt = started[e.activity_task_completed_event_attributes.scheduled_event_id]
            spans.append((begin, e.event_time.ToDatetime().timestamp(), attempt))
    return spans


async def test_openai_agents_sdk_end_to_end(client, fake_openai, worker):
    fake_openai.push(Reply(tool_calls=[("calculate_budget", BUDGET_ARGS)]), Reply(text=budget_answer()))
    handle, result = await run(
        client, worker.task_queue, {"agent": "budget", "prompt": "I earn 5000 a month.", "model": OPENAI_MODEL}
    )

    assert result["status"] == "completed", result
    assert result["output"] == json.loads(budget_answer())
    assert result["usage"]["llm_calls"] == 2 and result["usage"]["tool_calls"] == 1
    assert result["usage"]["input_tokens"] > 0 and result["usage"]["cost_usd"] > 0
    assert result["steps"] == 1
    first, second = fake_openai.requests
    assert first.api == "responses" and first.tool_names == ["calculate_budget"]
    assert first.body["model"] == "gpt-5"
    assert first.body["text"]["format"]["type"] == "json_schema"  # the pydantic output model reached the SDK
    # The tool ran in the worker and its result reached the model's next request.
    assert second.tool_outputs() == [{"call_id": "call_0001_0", "output": json.dumps(split_budget(5000.0))}]
    fake_openai.assert_script_consumed()
    attributes = (await handle.describe()).typed_search_attributes
    assert {p.key.name: p.value for p in attributes}["AgentPattern"] == "A"


async def test_claude_tool_loop_end_to_end(client, worker, fake_llm):
    fake_llm.push(
        Reply(tool_calls=[("project_savings", SAVINGS_ARGS)]), Reply(text=f"```json\n{analysis_answer()}\n```")
    )
    _, result = await run(
        client, worker.task_queue, {"agent": "analysis", "prompt": "1000/month, 10y, 5%", "model": CLAUDE_MODEL}
    )

    assert result["status"] == "completed", result
    assert result["output"]["projected_value"] == future_value(1000, 10, 0.05)
    assert result["usage"]["llm_calls"] == 2 and result["usage"]["tool_calls"] == 1
    first, second = fake_llm.requests
    assert [t["name"] for t in first.body["tools"]] == ["project_savings"]
    [tool_result] = second.tool_results()
    assert json.loads(tool_result["content"])["projected_value"] == future_value(1000, 10, 0.05)
    assert tool_result["is_error"] is False
    fake_llm.assert_script_consumed()


async def test_two_specialists_in_parallel_overlap_and_merge(client, fake_openai, worker):
    fake_openai.responder = specialist_responder(delay=0.7)
    steps = [{"agent": "budget", "prompt": "I earn 5000."}, {"agent": "analysis", "prompt": "1000/month, 10y, 5%"}]
    handle, result = await run(
        client, worker.task_queue, {"prompt": "plan my money", "model": OPENAI_MODEL, "steps": steps, "parallel": True}
    )

    assert result["status"] == "completed", result
    assert result["output"] == {"budget": json.loads(budget_answer()), "analysis": json.loads(analysis_answer())}
    assert result["usage"]["llm_calls"] == 4 and result["usage"]["tool_calls"] == 2 and result["steps"] == 2
    (start_a, end_a, _), (start_b, end_b, _) = await activity_spans(handle)
    assert start_a < end_b and start_b < end_a, "the two invoke_agent activities did not overlap"


async def test_worker_killed_mid_agent_retries_only_the_unfinished_agent(
    client, fake_openai, worker_processes, settings
):
    answer = specialist_responder()
    # The analysis agent's first call hangs long enough for the worker to be killed while it waits.
    hang = {"done": False}

    def respond(body: dict) -> Reply:
        reply = answer(body)
        tools = [t.get("name") for t in body.get("tools", [])]
        if "project_savings" in tools and not hang["done"]:
            hang["done"] = True
            reply.delay = 30
        return reply

    fake_openai.responder = respond
    first = worker_processes(OPENAI_BASE_URL=fake_openai.url)
    steps = [{"agent": "budget", "prompt": "I earn 5000."}, {"agent": "analysis", "prompt": "1000/month, 10y, 5%"}]
    handle = await client.start_workflow(
        "BlackBoxAgentWorkflow",
        {"prompt": "plan", "model": OPENAI_MODEL, "steps": steps},
        id=workflow_id("blackbox-kill"),
        task_queue=settings.task_queue,
    )
    await eventually(lambda: hang["done"], timeout=30)
    first.kill()
    worker_processes(OPENAI_BASE_URL=fake_openai.url)
    result = await handle.result()

    assert result["status"] == "completed", result
    assert set(result["output"]) == {"budget", "analysis"}
    budget_calls = [r for r in fake_openai.requests if "calculate_budget" in r.tool_names]
    analysis_calls = [r for r in fake_openai.requests if "project_savings" in r.tool_names]
    assert len(budget_calls) == 2, "the finished budget agent ran again"
    assert len(analysis_calls) == 3  # the hung call, then a whole new run: tool call + answer
    spans = await activity_spans(handle)
    assert [attempt for _, _, attempt in spans] == [1, 2]


async def test_agents_sdk_reaches_no_host_but_the_fake(fake_openai, settings, monkeypatch):
    """Activity-level run with socket connects recorded; the SDK's own tracing must stay silent."""
    from agents.tracing import flush_traces

    from activities.black_box.invoke_agent import BlackBoxActivities
    from activities.black_box.openai_engine import OpenAIAgentEngine
    from activities.tool_executor import ToolExecutor
    from models.blackbox import InvokeAgentRequest
    from tools.catalog import REGISTRY
    from tools.deps import ToolDeps

    monkeypatch.delenv("OPENAI_AGENTS_DISABLE_TRACING", raising=False)  # our code, not the test env, must disable it
    fake_openai.push(Reply(tool_calls=[("calculate_budget", BUDGET_ARGS)]), Reply(text=budget_answer()))
    connects: list = []
    real_connect = socket.socket.connect

    def recording_connect(sock, address):
        connects.append(address)
        return real_connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", recording_connect)
    executor = ToolExecutor(REGISTRY, ToolDeps.from_settings(settings))
    activities = BlackBoxActivities(
        settings,
        resolver_for(REGISTRY),
        {"openai": OpenAIAgentEngine(OpenAIProvider(settings.openai), REGISTRY)},
        executor,
    )
    env = ActivityEnvironment()
    heartbeats: list = []
    env.on_heartbeat = lambda *details: heartbeats.append(details)
    result = await env.run(
        activities.invoke_agent, InvokeAgentRequest(agent="budget", prompt="I earn 5000.", model=OPENAI_MODEL)
    )
    flush_traces()

    assert result.output == json.loads(budget_answer()) and result.turns == 2
    fake_port = int(fake_openai.url.rsplit(":", 1)[1].split("/")[0])
    assert connects and all(addr[:2] == ("127.0.0.1", fake_port) for addr in connects), connects
    turns = [d[0]["turn"] for d in heartbeats if d]
    assert 1 in turns and 2 in turns  # a heartbeat per turn, with progress


async def test_unknown_provider_is_refused_naming_the_supported_ones(client, worker):
    from temporalio.client import WorkflowFailureError

    with pytest.raises(WorkflowFailureError) as info:
        handle = await client.start_workflow(
            "AgentLoopWorkflow",
            {"prompt": "hi", "model": "mistral:large"},
            id=workflow_id("loop-mistral"),
            task_queue=worker.task_queue,
        )
        await handle.result()
    assert "model: Value error, provider 'mistral' is not supported (supported: anthropic, openai)" in str(
        info.value.cause
    )


async def test_agent_loop_on_an_openai_model_steps_through_the_responses_api(client, fake_openai, worker):
    fake_openai.push(Reply(tool_calls=[("calculator", {"expression": "6000 * 0.2"})]), Reply(text="6000 * 0.2 = 1200"))
    handle = await client.start_workflow(
        "AgentLoopWorkflow",
        {"prompt": "What is 6000 * 0.2?", "model": OPENAI_MODEL},
        id=workflow_id("loop-openai"),
        task_queue=worker.task_queue,
    )
    result = await handle.result()
    assert result["status"] == "completed" and result["output"] == "6000 * 0.2 = 1200" and result["steps"] == 3
    first, second = fake_openai.requests
    assert first.body["model"] == "gpt-5" and {t["name"] for t in first.body["tools"]} == {
        "calculator",
        "search_notes",
        "write_note",
    }
    # The tool call and its result went back as Responses API items, paired by call id.
    call = next(i for i in second.body["input"] if i.get("type") == "function_call")
    output = next(i for i in second.body["input"] if i.get("type") == "function_call_output")
    assert call["name"] == "calculator" and output["call_id"] == call["call_id"] and output["output"] == "1200"
    assert result["usage"]["llm_calls"] == 2 and result["usage"]["cost_usd"] > 0
    fake_openai.assert_script_consumed()


async def test_unknown_field_and_unknown_step_agent_fail_naming_the_field(client, worker):
    from temporalio.client import WorkflowFailureError

    for payload, names in (
        ({"prompt": "hi", "colour": "red"}, "colour: unknown field"),
        ({"prompt": "hi", "steps": [{"agent": "nobody", "prompt": "x"}]}, "steps.0.agent: unknown agent 'nobody'"),
        ({"prompt": "hi", "max_concurrency": 0}, "max_concurrency"),
    ):
        with pytest.raises(WorkflowFailureError) as info:
            await run(client, worker.task_queue, payload, prefix="blackbox-bad")
        assert names in str(info.value.cause) and "invalid input" in str(info.value.cause)


async def test_approval_between_steps_rejection_ends_the_run(client, fake_openai, worker):
    from tests.helpers import pending_approvals

    fake_openai.responder = specialist_responder()
    steps = [{"agent": "budget", "prompt": "I earn 5000."}, {"agent": "analysis", "prompt": "1000/month, 10y, 5%"}]
    handle = await client.start_workflow(
        "BlackBoxAgentWorkflow",
        {"prompt": "plan", "model": OPENAI_MODEL, "steps": steps, "approval_between_steps": True},
        id=workflow_id("blackbox-gate"),
        task_queue=worker.task_queue,
    )
    [pending] = await pending_approvals(handle)
    assert pending["kind"] == "plan" and "analysis" in json.dumps(pending)
    await handle.signal("reject", {"approver": "alice", "reason": "enough"})
    result = await handle.result()

    assert result["status"] == "rejected"
    assert list(result["output"]["outputs"]) == ["budget"]
    assert not [r for r in fake_openai.requests if "project_savings" in r.tool_names]


async def test_budget_is_checked_before_each_step(client, fake_openai, worker):
    fake_openai.responder = specialist_responder()
    steps = [{"agent": "budget", "prompt": "I earn 5000."}, {"agent": "analysis", "prompt": "1000/month, 10y, 5%"}]
    _, result = await run(
        client,
        worker.task_queue,
        {"prompt": "plan", "model": OPENAI_MODEL, "steps": steps, "budget": {"max_tokens": 20}},
    )

    assert result["status"] == "budget_exceeded"
    # 20 tokens cannot pay for the first step's first call: its input as the API counts it (the fake counts what it
    # bills, about 10 tokens) leaves fewer output tokens than a call is worth. Nothing is sent.
    assert result["output"]["not_done"] == ["budget", "analysis"] and result["output"]["outputs"] == {}
    assert "token budget too small for the next model call" in result["output"]["reason"]
    assert result["usage"]["llm_calls"] == 0 and fake_openai.requests == []
    assert fake_openai.counted, "the call's input was counted first (responses.input_tokens), as Claude's is"


@pytest.mark.parametrize("workflow", ["AgentLoopWorkflow", "BlackBoxAgentWorkflow"])
async def test_tool_arguments_that_are_not_an_object_are_refused_the_same_way_in_a_loop_and_a_black_box(
    client, fake_openai, worker, workflow
):
    # The Responses API sends arguments as JSON text: here a JSON string where an object of arguments belongs.
    fake_openai.push(Reply(tool_calls=[("calculator", "6000 * 0.2")]), Reply(text="I will try again later."))
    handle = await client.start_workflow(
        workflow,
        {"prompt": "What is 6000 * 0.2?", "model": OPENAI_MODEL},
        id=workflow_id("bad-args"),
        task_queue=worker.task_queue,
    )
    result = await handle.result()
    assert result["status"] == "completed" and result["output"] == "I will try again later.", result
    [told] = fake_openai.requests[1].tool_outputs()  # never run with no arguments: refused, saying what was wrong
    assert (
        "Invalid arguments for 'calculator': the arguments are a JSON string, not an object of named arguments"
        in told["output"]
    ), told
    fake_openai.assert_script_consumed()
