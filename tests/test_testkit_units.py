"""The test kit's parts: the tool tap's recorded outputs and divergences, cassettes made of archives, and the
eval's verdicts and table (without a server); outputs judged by a judge agent or a schema (on a time-skipping one)."""

from __future__ import annotations

import pytest

from models.errors import ToolInputError
from testkit.cassette import Cassette, CassetteInvalid, RecordedCall, RecordedTurn, from_archive
from testkit.drive import RunReport
from testkit.evaluate import EvalResult, summary_table
from testkit.tap import ToolCallRecord, ToolTap
from tools.registry import CallInfo, Registry, Tool

RAN: list[str] = []


async def _handler(args, deps, info):
    RAN.append(args["x"])
    return f"live {args['x']}"


def tapped() -> tuple[ToolTap, Registry]:
    registry = Registry()
    registry.add_tool(Tool("lookup", "read", handler=_handler, effect="read"))
    registry.add_tool(Tool("save", "write", handler=_handler, effect="write"))
    tap = ToolTap()
    return tap, tap.wrap(registry)


async def call(registry: Registry, tool: str, x: str) -> str:
    return await registry.tools[tool].handler({"x": x}, None, CallInfo("key"))  # type: ignore[misc]


async def test_a_replay_serves_recorded_outputs_and_names_the_step_that_diverges():
    tap, registry = tapped()
    RAN.clear()
    tap.expect(
        "", [ToolCallRecord("lookup", {"x": "a"}, "recorded a"), ToolCallRecord("save", {"x": "b"}, "saved b")], "all"
    )

    assert await call(registry, "lookup", "a") == "recorded a"
    with pytest.raises(
        ToolInputError,
        match=r"step 2: the agent called save\(\{\"x\": \"c\"\}\); the recording has save\(\{\"x\": \"b\"\}\) next",
    ):
        await call(registry, "save", "c")
    assert RAN == []  # nothing ran for real
    assert [c.served for c in tap.calls[""]] == ["recorded", "divergence"] and len(tap.divergences[""]) == 1


async def test_an_eval_runs_read_tools_and_serves_writes_and_an_unrecorded_write_diverges():
    tap, registry = tapped()
    RAN.clear()
    tap.expect("", [ToolCallRecord("save", {"x": "b"}, "saved b")], "write")

    assert await call(registry, "lookup", "a") == "live a"
    assert await call(registry, "save", "b") == "saved b"
    with pytest.raises(ToolInputError, match="step 3: the agent called save"):
        await call(registry, "save", "b")  # the one recorded save is used up
    assert RAN == ["a"]


def _archive(**changes) -> dict:
    document = {
        "workflow_id": "w1",
        "workflow_type": "AgentLoopWorkflow",
        "status": "completed",
        "output": "1200",
        "input": {"agent": "assistant", "prompt": "What is 6000 * 0.2?", "model": None},
        "conversations": {
            "agent": {
                "messages": [
                    {"role": "user", "content": [{"type": "text", "text": "What is 6000 * 0.2?"}]},
                    {
                        "role": "assistant",
                        "content": [
                            {
                                "type": "tool_use",
                                "id": "t1",
                                "name": "calculator",
                                "arguments": {"expression": "6000 * 0.2"},
                            }
                        ],
                    },
                    {
                        "role": "user",
                        "content": [
                            {"type": "tool_result", "tool_use_id": "t1", "content": "12…", "content_ref": "blob-1"}
                        ],
                    },
                    {"role": "assistant", "content": [{"type": "text", "text": "1200"}]},
                ]
            }
        },
        "items": {"blob-1": {"json": "1200"}},
    }
    return {**document, **changes}


def test_a_cassette_holds_the_replies_and_the_whole_tool_outputs(tmp_path):
    cassette = from_archive(_archive())
    assert [(t.text, t.tool_calls) for t in cassette.turns] == [
        ("", [{"tool": "calculator", "arguments": {"expression": "6000 * 0.2"}}]),
        ("1200", []),
    ]
    assert [(c.tool, c.output) for c in cassette.tool_calls] == [
        ("calculator", "1200")
    ]  # the stored blob, not the preview
    cassette.save(tmp_path / "c.json")
    assert Cassette.load(tmp_path / "c.json") == cassette


def test_runs_a_cassette_cannot_be_made_of_say_why():
    with pytest.raises(CassetteInvalid, match="cassettes are made of AgentLoopWorkflow runs"):
        from_archive(_archive(workflow_type="BlackBoxAgentWorkflow", conversations={}))
    with pytest.raises(CassetteInvalid, match="archived before cassettes existed"):
        from_archive(_archive(input={}))


def test_the_summary_table_marks_regressions():
    case = Cassette(
        workflow_id="w1",
        prompt="p",
        turns=[RecordedTurn(text="x")],
        tool_calls=[RecordedCall(tool="calculator")],
        status="completed",
        output="x",
        usage={"cost_usd": 0.002},
    )
    same = EvalResult(
        case, RunReport("k1", result={"status": "completed", "output": "x", "usage": {"cost_usd": 0.002}})
    )
    worse = EvalResult(
        case,
        RunReport("k2", result={"status": "completed", "output": "y"}),
        "differs",
        ["-calculator"],
        ["tool calls -calculator", "output differs"],
    )
    table = summary_table([same, worse])
    assert not same.regression and worse.regression
    assert "$0.0020 ($0.0020)  pass" in table and "differs  -calculator" in table and "REGRESSION" in table
    assert table.splitlines()[3] == "2 runs, 1 regression(s)"


JUDGED_AGENTS = """
[agents.judge]
instructions = "You compare two answers and reply PASS or FAIL first."
tools = []

[agents.totals]
instructions = "You answer with a JSON total."
tools = []
output_schema = { type = "object", properties = { total = { type = "number" } }, required = ["total"] }
"""


async def test_outputs_that_differ_are_judged_or_checked_against_the_schema(tmp_path):
    from devstack.scripted_http import Reply
    from testkit.evaluate import evaluate
    from testkit.kit import AgentKit

    (tmp_path / "agents.toml").write_text(JUDGED_AGENTS)
    worded = Cassette(
        workflow_id="w1", prompt="What is 6000 * 0.2?", turns=[], tool_calls=[], status="completed", output="1200"
    )
    shaped = Cassette(
        workflow_id="w2",
        agent="totals",
        prompt="Total?",
        turns=[],
        tool_calls=[],
        status="completed",
        output={"total": 1},
    )
    async with AgentKit(tmp_path / "agents.toml", server="time-skipping") as kit:
        kit.script(Reply(text="It is 1200."), Reply(text="PASS: the same number"), Reply(text='{"total": 2}'))
        results = await evaluate(kit, [worded, shaped], judge="judge")
        kit.assert_script_consumed()

    assert [r.output_check for r in results] == ["judged pass", "schema-valid"]
    assert not any(r.regression for r in results)
