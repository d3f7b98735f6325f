"""One trace per run: Temporal's spans and Langfuse's generations, exported by a real worker to a local OTLP sink."""

from __future__ import annotations

import json
import subprocess
from collections import Counter

import pytest

from devstack.dev_server import temporal_cli
from devstack.fake_anthropic import Reply
from devstack.fake_langfuse import FakeLangfuse, SpanRecord
from devstack.fake_openai import FakeOpenAI
from devstack.scripted_model import respond
from tests.conftest import workflow_id
from tests.helpers import eventually
from tests.test_blackbox import specialist_responder

ANTHROPIC_SECRET = "sk-ant-test-0f5e7c1d9b2a4e6f"
OPENAI_SECRET = "sk-openai-test-8c3b1a2d7e6f"


@pytest.fixture
def sink():
    """The Langfuse OTLP endpoint, on 127.0.0.1."""
    with FakeLangfuse(secret_key="sk-lf-test-5d4c3b2a1f0e") as fake:
        yield fake


@pytest.fixture
def traced_worker(worker_processes, sink, fake_llm):
    """Factory: a `python worker.py` process exporting to the sink, with secrets we can look for later."""
    fake_llm.responder = respond

    def spawn(**extra: str):
        return worker_processes(
            **sink.env(),
            ANTHROPIC_API_KEY=ANTHROPIC_SECRET,
            OPENAI_API_KEY=OPENAI_SECRET,
            OTEL_SERVICE_NAME="agents-under-test",
            **extra,
        )

    return spawn


def openai_responder():
    """The assistant on the Responses API (calculator, then the answer); the finance specialists otherwise."""
    specialists = specialist_responder()

    def respond(body: dict) -> Reply:
        if "calculator" not in {t.get("name") for t in body.get("tools", [])}:
            return specialists(body)
        answered = any(isinstance(i, dict) and i.get("type") == "function_call_output" for i in body["input"])
        return (
            Reply(text="6000 * 0.2 = 1200")
            if answered
            else Reply(tool_calls=[("calculator", {"expression": "6000 * 0.2"})])
        )

    return respond


def cli_start(dev_server, queue: str, workflow_type: str, payload: dict, wid: str) -> None:
    """Start a run the way users do, with the `temporal` CLI (no client-side span: the workflow is the root)."""
    subprocess.run(
        [
            temporal_cli(),
            "workflow",
            "start",
            "--address",
            dev_server.address,
            "--type",
            workflow_type,
            "--task-queue",
            queue,
            "--workflow-id",
            wid,
            "--input",
            json.dumps(payload),
        ],
        check=True,
        capture_output=True,
    )


async def finish(client, wid: str) -> dict:
    """Approve every request the run opens until it ends; its result."""
    handle = client.get_workflow_handle(wid)

    async def done_or_approved():
        description = await handle.describe()
        if description.status.name != "RUNNING":
            return True
        for pending in (await handle.query("status"))["pending_approvals"]:
            await handle.signal("approve", {"approver": "alice", "request_id": pending["request_id"]})
        return False

    await eventually(done_or_approved, timeout=90, interval=0.3)
    return await handle.result()


def of_type(spans: list[SpanRecord], observation_type: str) -> list[SpanRecord]:
    return [s for s in spans if s.observation_type == observation_type]


def named(spans: list[SpanRecord], prefix: str) -> list[SpanRecord]:
    return [s for s in spans if s.name.startswith(prefix)]


def check_run_trace(
    spans: list[SpanRecord], result: dict, *, customer: str, session: str, activity: str
) -> list[SpanRecord]:
    """What a user checks in Langfuse for one run; returns its generations."""
    assert len(result["trace_id"]) == 32 and all(s.trace_id == result["trace_id"] for s in spans)
    assert {s.resource.get("service.name") for s in spans} == {"agents-under-test"}
    assert all(s.resource.get("service.version") for s in spans)
    # The trace says what it was asked and what it answered (Langfuse's trace Input and Output).
    (asked,) = [s.json_attribute("langfuse.trace.input") for s in spans if "langfuse.trace.input" in s.attributes]
    (answered,) = [s.json_attribute("langfuse.trace.output") for s in spans if "langfuse.trace.output" in s.attributes]
    assert asked["prompt"] and asked["customer_id"] == customer
    assert answered["status"] == result["status"] and answered["output"] == result["output"]
    assert answered["usage"] == result["usage"]
    by_id = {s.span_id: s for s in spans}
    assert len(named(spans, "RunWorkflow:")) == 1, [s.name for s in spans]
    runs_of_activity = {s.span_id for s in named(spans, f"RunActivity:{activity}")}
    generations = of_type(spans, "generation")
    assert len(generations) == result["usage"]["llm_calls"]
    for g in generations:
        usage = g.json_attribute("langfuse.observation.usage_details")
        assert usage["input"] > 0 and usage["output"] > 0 and usage["total"] == usage["input"] + usage["output"]
        assert g.json_attribute("langfuse.observation.cost_details")["total"] > 0
        assert g.attributes["langfuse.observation.model.name"] in ("claude-sonnet-5-5", "gpt-5")
        assert g.json_attribute("langfuse.observation.input") and g.json_attribute("langfuse.observation.output")
        assert g.attributes["user.id"] == customer and g.attributes["session.id"] == session
        # The generation sits under the activity that made the call: one click from the Temporal step.
        assert g.parent_span_id in runs_of_activity, (g.name, by_id.get(g.parent_span_id))
    assert (
        sum(g.json_attribute("langfuse.observation.usage_details")["input"] for g in generations)
        == result["usage"]["input_tokens"]
    )
    assert (
        sum(g.json_attribute("langfuse.observation.usage_details")["output"] for g in generations)
        == result["usage"]["output_tokens"]
    )
    return generations


async def test_each_run_is_one_langfuse_trace_with_generations_tool_spans_and_temporal_spans(
    client, dev_server, settings, traced_worker, sink, fake_llm, monkeypatch, tmp_path
):
    with FakeOpenAI(responder=openai_responder()) as fake_openai:
        worker = traced_worker(OPENAI_BASE_URL=fake_openai.url)
        runs = {
            "loop": (
                "AgentLoopWorkflow",
                {"prompt": "What is 6000 * 0.2?", "customer_id": "C-trace", "session_id": "chat-7"},
            ),
            "openai-loop": (
                "AgentLoopWorkflow",
                {"prompt": "What is 6000 * 0.2?", "model": "openai:gpt-5", "customer_id": "C-trace"},
            ),
            "blackbox": (
                "BlackBoxAgentWorkflow",
                {
                    "prompt": "advise",
                    "model": "openai:gpt-5",
                    "customer_id": "C-trace",
                    "parallel": True,
                    "steps": [
                        {"agent": "budget", "prompt": "Income 5000"},
                        {"agent": "analysis", "prompt": "1000 a month, 10 years, 5%"},
                    ],
                },
            ),
            "hybrid": (
                "HybridAgentWorkflow",
                {
                    "prompt": "My income is 6000 a month; plan a budget and decide whether to invest 500 a month.",
                    "customer_id": "C-trace",
                },
            ),
        }
        ids = {name: workflow_id(f"trace-{name}") for name in runs}
        for name, (workflow_type, payload) in runs.items():
            cli_start(dev_server, settings.task_queue, workflow_type, payload, ids[name])
        results = {name: await finish(client, ids[name]) for name in runs}
        assert worker.terminate() == 0  # SIGTERM flushes what the exporter still holds
    assert not sink.rejected
    assert all(r["status"] == "completed" for r in results.values()), results

    loop = sink.in_trace(results["loop"]["trace_id"])
    check_run_trace(loop, results["loop"], customer="C-trace", session="chat-7", activity="call_llm")
    tools = of_type(loop, "tool")
    assert [t.name for t in tools] == ["tool calculator"] and tools[0].attributes[
        "langfuse.observation.output"
    ] == "1200"
    assert {s.name for s in loop} >= {
        "StartActivity:call_llm",
        "RunActivity:call_llm",
        "StartActivity:run_tool",
        "RunActivity:run_tool",
    }

    openai_loop = sink.in_trace(results["openai-loop"]["trace_id"])
    generations = check_run_trace(
        openai_loop, results["openai-loop"], customer="C-trace", session=ids["openai-loop"], activity="call_llm"
    )
    assert {g.name for g in generations} == {"openai.responses"}  # pattern B on the Responses API
    assert [t.name for t in of_type(openai_loop, "tool")] == ["tool calculator"]

    blackbox = sink.in_trace(results["blackbox"]["trace_id"])
    generations = check_run_trace(
        blackbox, results["blackbox"], customer="C-trace", session=ids["blackbox"], activity="invoke_agent"
    )
    assert {g.name for g in generations} == {"openai.responses"}  # inside the Agents SDK's black box
    assert sorted(t.name for t in of_type(blackbox, "tool")) == ["tool calculate_budget", "tool project_savings"]

    hybrid = sink.in_trace(results["hybrid"]["trace_id"])
    hybrid_llm = [s for s in hybrid if s.name in ("RunActivity:call_llm", "RunActivity:invoke_agent")]
    generations = of_type(hybrid, "generation")
    assert len(generations) == results["hybrid"]["usage"]["llm_calls"]
    assert {g.parent_span_id for g in generations} <= {s.span_id for s in hybrid_llm}
    assert {s.name for s in hybrid_llm} == {
        "RunActivity:call_llm",
        "RunActivity:invoke_agent",
    }  # plan/execute and specialists

    # Four runs, four traces; nothing exported outside them.
    assert {s.trace_id for s in sink.spans} == {r["trace_id"] for r in results.values()}, [
        (s.name, s.parent_span_id) for s in sink.spans if s.trace_id not in {r["trace_id"] for r in results.values()}
    ]
    # Secrets stay in the worker's environment: not in any exported byte, log line or history.
    exported = b"".join(sink.bodies)
    log = worker.log_path.read_bytes()
    histories = [(await client.get_workflow_handle(i).fetch_history()).to_json().encode() for i in ids.values()]
    for secret in (ANTHROPIC_SECRET, OPENAI_SECRET, sink.secret_key):
        assert secret.encode() not in exported and secret.encode() not in log
        assert all(secret.encode() not in h for h in histories)


async def test_replaying_every_workflow_task_exports_no_duplicate_spans(
    client, dev_server, settings, traced_worker, sink, fake_llm
):
    # Cache 0: the worker forgets the run after every workflow task and replays it from history for the next.
    worker = traced_worker(WORKER_MAX_CACHED_WORKFLOWS="0")
    wid = workflow_id("trace-replay")
    cli_start(
        dev_server,
        settings.task_queue,
        "AgentLoopWorkflow",
        {"prompt": "What is 6000 * 0.2? Then save a note with the answer.", "customer_id": "C-replay"},
        wid,
    )
    result = await finish(client, wid)
    assert worker.terminate() == 0
    assert result["status"] == "completed" and result["usage"]["tool_calls"] == 2

    spans = sink.in_trace(result["trace_id"])
    duplicates = [k for k, n in Counter(s.span_id for s in spans).items() if n > 1]
    assert not duplicates
    history = await client.get_workflow_handle(wid).fetch_history()
    scheduled = Counter(
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    )
    # history_limits and archive_run are local activities: markers in history rather than scheduled events.
    # The calculator is a read tool: a local `run_tool` too, beside the scheduled write_note.
    for local in ("history_limits", "archive_run", "resolve_agents", "run_tool"):
        scheduled[local] += sum(
            1
            for e in history.events
            if e.marker_recorded_event_attributes.marker_name == "core_local_activity"
            and local.encode() in e.SerializeToString()
        )
    started = Counter(s.name.removeprefix("StartActivity:") for s in named(spans, "StartActivity:"))
    assert started == scheduled  # one span per activity, though each workflow task replayed all before it
    assert len(named(spans, "RunWorkflow:")) == 1
    approvals = named(spans, "approval ")
    assert len(approvals) == 1 and approvals[0].attributes["approval.outcome"] == "approved"
    assert approvals[0].attributes["approval.approver"] == "alice"
    # Langfuse shows the proposal as the approval's input and the decision as its output, without metadata.
    assert approvals[0].json_attribute("langfuse.observation.input")["proposal"]["tool"] == "write_note"
    decision = approvals[0].json_attribute("langfuse.observation.output")
    assert decision == {"approved": True, "approver": "alice", "comment": decision["comment"], "via": "signal"}
    # One trace input and one trace output, though every workflow task replayed the run from the start.
    inputs = [s for s in spans if "langfuse.trace.input" in s.attributes]
    outputs = [s for s in spans if "langfuse.trace.output" in s.attributes]
    assert len(inputs) == 1 and inputs[0].json_attribute("langfuse.trace.input")["customer_id"] == "C-replay"
    assert len(outputs) == 1 and outputs[0].json_attribute("langfuse.trace.output")["status"] == "completed"
    assert len(of_type(spans, "generation")) == result["usage"]["llm_calls"] == scheduled["call_llm"]
    assert [t.name for t in of_type(spans, "tool")] == ["tool calculator", "tool write_note"]


async def test_runs_that_do_not_complete_still_say_what_they_were_asked_and_how_they_ended(
    client, dev_server, settings, traced_worker, sink
):
    worker = traced_worker()
    runs = {
        "failed": {"prompt": "hi", "agent": "nobody", "customer_id": "C-fail"},
        "budget": {"prompt": "What is 6000 * 0.2?", "customer_id": "C-budget", "budget": {"max_steps": 1}},
    }
    ids = {name: workflow_id(f"trace-{name}") for name in runs}
    for name, payload in runs.items():
        cli_start(dev_server, settings.task_queue, "AgentLoopWorkflow", payload, ids[name])
    for wid in ids.values():
        await eventually(
            lambda wid=wid: _closed(client, wid),
            timeout=60,
            interval=0.3,
        )
    assert worker.terminate() == 0
    by_customer = {}
    for span in sink.spans:
        if "langfuse.trace.input" in span.attributes:
            by_customer[span.json_attribute("langfuse.trace.input")["customer_id"]] = span.trace_id
    failed = sink.in_trace(by_customer["C-fail"])
    (output,) = [s.json_attribute("langfuse.trace.output") for s in failed if "langfuse.trace.output" in s.attributes]
    assert output["status"] == "failed" and "unknown agent 'nobody'" in output["error"]
    stopped = sink.in_trace(by_customer["C-budget"])
    (output,) = [s.json_attribute("langfuse.trace.output") for s in stopped if "langfuse.trace.output" in s.attributes]
    assert output["status"] == "budget_exceeded" and output["usage"]["llm_calls"] == 1


async def _closed(client, wid: str) -> bool:
    return (await client.get_workflow_handle(wid).describe()).status.name != "RUNNING"


async def test_a_run_that_continues_as_new_keeps_one_trace_with_one_input_and_the_final_output(
    client, settings, traced_worker, sink, fake_llm
):
    from devstack.histories import generations
    from devstack.long_run import log_reader, long_run_prompt, seed_log

    seed_log(settings.notes_db, 40, 2000)
    fake_llm.responder = log_reader
    worker = traced_worker(HISTORY_MAX_EVENTS="100")  # the minimum: a generation every ~8 steps
    handle = await client.start_workflow(
        "AgentLoopWorkflow",
        {
            "prompt": long_run_prompt(40),
            "customer_id": "C-long",
            "budget": {"max_steps": 200, "max_tokens": 10**8, "max_cost_usd": 1000.0},
        },
        id=workflow_id("trace-can"),
        task_queue=settings.task_queue,
    )
    result = await handle.result()
    assert worker.terminate() == 0
    assert result["status"] == "completed"
    assert len(await generations(client, handle.id, handle.first_execution_run_id or handle.run_id)) >= 2
    spans = sink.in_trace(result["trace_id"])
    assert len(named(spans, "RunWorkflow:")) >= 2  # every generation's spans are in the run's one trace
    inputs = [s for s in spans if "langfuse.trace.input" in s.attributes]
    outputs = [s.json_attribute("langfuse.trace.output") for s in spans if "langfuse.trace.output" in s.attributes]
    assert len(inputs) == 1 and inputs[0].json_attribute("langfuse.trace.input")["customer_id"] == "C-long"
    assert outputs == [result]  # set once, by the last generation
