"""The dev loop (`./scripts/dev`): the scripted model's script and defaults, and the loop itself end to end.

The unit tests drive the responder with request bodies as the product's providers send them. The end-to-end
test starts `python -m devstack` as a user would, with an agents file and a tool module of its own, runs the
agent, rewrites the script and the tool module, and sees the next runs follow them.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import Client

from devstack.dev_model import AgentCatalog, DevModel, KnownAgent
from devstack.dev_server import free_port
from devstack.example_values import example_value
from devstack.model_call import ModelCall
from devstack.script import ScriptInvalid, load_script
from devstack.scripted_http import Reply
from tests.conftest import workflow_id
from tests.fixtures.agents import support_tools
from tests.helpers import ROOT
from tools.catalog import REGISTRY
from tools.final_answer import schema_instruction
from tools.loader import module_tools
from tools.pinning import TRANSFER_PREFIX

SUPPORT = "You help customers with their orders."
ORDER_SCHEMA = {
    "type": "object",
    "properties": {"order_id": {"type": "string"}, "include_tax": {"type": "boolean", "default": True}},
    "required": ["order_id"],
}
REFUND_SCHEMA = {
    "type": "object",
    "properties": {"refunded": {"type": "boolean"}, "amount": {"type": "number", "minimum": 5}},
    "required": ["refunded", "amount"],
}

pytestmark = pytest.mark.xdist_group("default-ports")
"""The demo and the dev loop default to ports 7233/8233 and the README's gateway to 8088: one xdist worker runs these."""


def catalog() -> AgentCatalog:
    """The built-in agents and two of the user's: `support` (text answers) and `refunds` (JSON answers)."""
    built_in = AgentCatalog.load().agents.values()
    return AgentCatalog(
        [*built_in, KnownAgent("support", SUPPORT), KnownAgent("refunds", "You refund orders.", REFUND_SCHEMA)]
    )


def anthropic_body(system: str, prompt: str, tools: dict[str, dict] | None = None, history: list | None = None) -> dict:
    """A Messages API request as the product sends it."""
    wire_tools = [{"name": n, "description": n, "input_schema": s} for n, s in (tools or {}).items()]
    messages = [{"role": "user", "content": [{"type": "text", "text": prompt}]}, *(history or [])]
    return {
        "model": "claude-sonnet-5-5",
        "max_tokens": 1024,
        "system": system,
        "messages": messages,
        "tools": wire_tools,
    }


def answered(calls: list[tuple[str, str, dict]], results: list[str]) -> list[dict]:
    """One assistant turn making `calls` (id, name, arguments) and the user turn answering them."""
    uses = [{"type": "tool_use", "id": i, "name": n, "input": a} for i, n, a in calls]
    outs = [{"type": "tool_result", "tool_use_id": c[0], "content": r} for c, r in zip(calls, results)]
    return [{"role": "assistant", "content": uses}, {"role": "user", "content": outs}]


def reply(model: DevModel, body: dict) -> Reply:
    step = model.anthropic()(body)
    assert isinstance(step, Reply), step
    return step


# -- arguments from schemas ---------------------------------------------------------------------


def test_arguments_are_made_from_each_schema_type():
    assert example_value(ORDER_SCHEMA) == {"order_id": "example"}  # required only
    nested = {
        "type": "object",
        "required": ["when", "count", "ratio", "flag", "kind", "tags", "address", "maybe", "id"],
        "properties": {
            "when": {"type": "string", "format": "date"},
            "count": {"type": "integer", "minimum": 3},
            "ratio": {"type": "number", "exclusiveMaximum": 1},
            "flag": {"type": "boolean"},
            "kind": {"enum": ["gold", "silver"]},
            "tags": {"type": "array", "items": {"type": "string"}},
            "address": {"$ref": "#/$defs/address"},
            "maybe": {"anyOf": [{"type": "null"}, {"type": "integer"}]},
            "id": {"type": "string", "minLength": 10, "maxLength": 12},
        },
        "$defs": {"address": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
    }
    assert example_value(nested) == {
        "when": "2026-01-01",
        "count": 3,
        "ratio": 0,
        "flag": True,
        "kind": "gold",
        "tags": ["example"],
        "address": {"city": "example"},
        "maybe": 1,
        "id": "exampleexa",  # minLength 10
    }
    recursive = {
        "$defs": {"node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/node"}}, "required": ["next"]}},
        "$ref": "#/$defs/node",
    }
    assert json.dumps(example_value(recursive)).count("next") > 3  # stops growing instead of recursing forever


def test_the_arguments_of_the_products_own_tool_schemas_validate():
    """The built-in tools' and a decorated module's schemas (pydantic's JSON Schema) accept what is made."""
    declared = {t.name: t for t in [*REGISTRY.tools.values(), *module_tools(support_tools)]}
    for tool in declared.values():
        assert tool.args is not None
        tool.args.model_validate(example_value(tool.input_schema()))  # raises if the schema refuses it
    assert example_value(declared["shipping_days"].input_schema()) == {"country": "ex"}  # exactly 2 letters


# -- the script ---------------------------------------------------------------------------------


def test_a_script_in_toml_and_in_json_reads_the_same(tmp_path):
    toml = tmp_path / "script.toml"
    toml.write_text(
        '[[agents.support.turns]]\ntool_calls = [{ tool = "order_total", arguments = { order_id = "A1" } }]\n'
        '[[agents.support.turns]]\ntext = "done"\n'
        '[[prompts]]\nmatch = "(?i)refund"\nagent = "refunds"\nturns = [{ output = { refunded = true, amount = 5 } }]\n'
    )
    as_json = tmp_path / "script.json"
    as_json.write_text(
        json.dumps(
            {
                "agents": {
                    "support": {
                        "turns": [
                            {"tool_calls": [{"tool": "order_total", "arguments": {"order_id": "A1"}}]},
                            {"text": "done"},
                        ]
                    }
                },
                "prompts": [
                    {"match": "(?i)refund", "agent": "refunds", "turns": [{"output": {"refunded": True, "amount": 5}}]}
                ],
            }
        )
    )
    assert load_script(toml, catalog().names) == load_script(as_json, catalog().names)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[[agents.support.turns]]\n", "[agents.support] turns[1]: give text, output or tool_calls"),
        (
            '[[agents.support.turns]]\ntext = "a"\noutput = 1\n',
            "[agents.support] turns[1]: give text or output, not both",
        ),
        (
            '[[agents.support.turns]]\ntext = "a"\n[[agents.support.turns]]\ntool_calls = [{ name = "x" }]\n',
            "[agents.support] turns[2].tool_calls[1].tool: Field required",
        ),
        (
            '[[agents.support.turns]]\ntext = "a"\nspeed = 3\n',
            "[agents.support] turns[1].speed: Extra inputs are not permitted",
        ),
        ("[agents.support]\nturns = []\n", "[agents.support] turns: List should have at least 1 item"),
        (
            '[[prompts]]\nmatch = "refund(("\nturns = [{ text = "x" }]\n',
            "[[prompts]] #1 match: not a regular expression (missing ), unterminated subpattern",
        ),
        (
            '[[prompts]]\nmatch = "x"\nturns = [{ text = "x" }]\n[[prompts]]\nturns = [{ text = "y" }]\n',
            "[[prompts]] #2 match: Field required",
        ),
        (
            '[[agents.suport.turns]]\ntext = "a"\n',
            "[agents.suport]: no agent named 'suport' (agents: analysis, assistant, budget, planner, refunds, researcher, support)",
        ),
        (
            '[[prompts]]\nmatch = "x"\nagent = "nobody"\nturns = [{ text = "x" }]\n',
            "[[prompts]] #1: no agent named 'nobody'",
        ),
        ("[agents.support\n", "not valid TOML: Expected ']'"),
        ("tunes = 1\n", "tunes: Extra inputs are not permitted"),
    ],
)
def test_a_bad_script_is_one_line_per_problem_naming_the_file_and_entry(tmp_path, text, problem):
    path = tmp_path / "script.toml"
    path.write_text(text)
    with pytest.raises(ScriptInvalid) as refused:
        load_script(path, catalog().names)
    lines = refused.value.problems
    assert all(line.startswith(f"{path}: ") and "\n" not in line for line in lines), lines
    assert any(problem in line for line in lines), lines


def test_a_missing_script_or_bad_json_names_the_file(tmp_path):
    with pytest.raises(ScriptInvalid, match=r"missing.toml: cannot read the script: No such file"):
        load_script(tmp_path / "missing.toml")
    (tmp_path / "s.json").write_text("{")
    with pytest.raises(ScriptInvalid, match=r"s.json: not valid JSON: Expecting property name"):
        load_script(tmp_path / "s.json")


# -- the responder ------------------------------------------------------------------------------


@pytest.fixture
def script(tmp_path):
    path = tmp_path / "script.toml"
    path.write_text(
        '[[agents.support.turns]]\ntext = "Looking."\ntool_calls = [{ tool = "order_total" }]\n'
        '[[agents.support.turns]]\ntext = "It costs 42."\n'
        '[[prompts]]\nmatch = "(?i)\\\\brefund"\nturns = [{ text = "Refunds are closed today." }]\n'
    )
    return load_script(path, catalog().names)


def test_an_agents_turns_follow_the_conversation(script):
    model = DevModel(catalog(), script)
    first = reply(model, anthropic_body(SUPPORT, "What does A1 cost?", {"order_total": ORDER_SCHEMA}))
    assert first.text == "Looking." and first.tool_calls == [("order_total", {"order_id": "example"})]
    history = answered([("t1", "order_total", {"order_id": "example"})], ["42.00 EUR"])
    second = reply(model, anthropic_body(SUPPORT, "What does A1 cost?", {"order_total": ORDER_SCHEMA}, history))
    assert second.text == "It costs 42." and second.tool_calls == []
    # A retried call (same conversation) gets the same turn: turns count the model's replies already made.
    assert reply(model, anthropic_body(SUPPORT, "What does A1 cost?", {"order_total": ORDER_SCHEMA})).text == "Looking."


def test_a_prompt_pattern_wins_over_the_agent_entry_and_a_used_up_entry_closes(script):
    model = DevModel(catalog(), script)
    assert reply(model, anthropic_body(SUPPORT, "I want a REFUND")).text == "Refunds are closed today."
    history = answered([("t1", "order_total", {"order_id": "A1"})], ["42.00 EUR"])
    history += [{"role": "assistant", "content": [{"type": "text", "text": "It costs 42."}]}]
    history += [{"role": "user", "content": [{"type": "text", "text": "and B2?"}]}]
    closing = reply(model, anthropic_body(SUPPORT, "What does A1 cost?", {"order_total": ORDER_SCHEMA}, history))
    assert closing.text == "(scripted model) order_total returned: 42.00 EUR."


def test_an_unscripted_agent_calls_each_tool_once_then_names_the_results():
    seen: list[str] = []
    model = DevModel(catalog(), observe=seen.append)
    tools = {
        "order_total": ORDER_SCHEMA,
        f"{TRANSFER_PREFIX}billing": {"type": "object"},  # a handoff: left to scripts
        "crm__refund_order": {"type": "object", "properties": {"amount": {"type": "number"}}, "required": ["amount"]},
    }
    first = reply(model, anthropic_body(SUPPORT, "Hi", tools))
    assert first.tool_calls == [("order_total", {"order_id": "example"}), ("crm__refund_order", {"amount": 1})]
    history = answered(
        [("a", "order_total", {}), ("b", "crm__refund_order", {})], ["no order example", "Not run: rejected"]
    )
    history[1]["content"][1]["is_error"] = True
    last = reply(model, anthropic_body(SUPPORT, "Hi", tools, history))
    assert (
        last.text
        == "(scripted model) order_total returned: no order example; crm__refund_order failed: Not run: rejected."
    )
    assert seen == ["support <- each of its tools once: order_total, crm__refund_order", "support <- closing answer"]


def test_an_agent_with_an_output_schema_answers_json_made_from_it():
    model = DevModel(catalog())
    answer = reply(model, anthropic_body("You refund orders.", "Refund A1"))
    assert json.loads(answer.text) == {"refunded": True, "amount": 5}


def test_built_in_agents_keep_the_demo_roles_and_an_unknown_caller_gets_the_default():
    model = DevModel(catalog())
    assistant = REGISTRY.agents["assistant"]
    calc = {t: REGISTRY.tools[t].input_schema() for t in assistant.tools}
    demo = reply(model, anthropic_body(assistant.instructions, "What is 6000 * 0.2?", calc))
    assert demo.tool_calls == [("calculator", {"expression": "6000 * 0.2"})]
    stranger = reply(model, anthropic_body("Someone else entirely.", "What is 6000 * 0.2?", calc))
    assert [name for name, _ in stranger.tool_calls] == ["calculator", "search_notes", "write_note"]


def test_the_planner_is_told_apart_from_the_specialists_its_instructions_quote():
    known = catalog()
    planner = REGISTRY.agents["planner"].instructions
    assert REGISTRY.agents["analysis"].instructions in planner  # the specialists' one-line descriptions
    assert known.identify(planner).name == "planner"
    analysis = REGISTRY.agents["analysis"]
    assert known.identify(analysis.instructions + schema_instruction(analysis.output_schema)).name == "analysis"
    assert known.identify("You help customers with their orders. Be brief.").name == "support"
    assert known.identify("Something else. You help customers with their orders.") is None


def test_openai_requests_are_answered_the_same_way(script):
    """The Responses API's items (as `call_llm` and the Agents SDK send them) and Chat Completions' messages."""
    model = DevModel(catalog(), script)
    tools = [{"type": "function", "name": "order_total", "parameters": ORDER_SCHEMA}]
    first = {"model": "gpt-5", "instructions": SUPPORT, "input": [{"role": "user", "content": "A1?"}], "tools": tools}
    assert model.openai()(first) == Reply(text="Looking.", tool_calls=[("order_total", {"order_id": "example"})])
    later = [
        {"role": "user", "content": [{"type": "input_text", "text": "A1?"}]},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Looking."}]},
        {"type": "function_call", "call_id": "c1", "name": "order_total", "arguments": '{"order_id": "A1"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "42.00 EUR"},
    ]
    assert model.openai()({**first, "input": later}) == Reply(text="It costs 42.")
    chat = {
        "model": "gpt-5",
        "messages": [
            {"role": "system", "content": SUPPORT},
            {"role": "user", "content": "A1?"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "order_total", "arguments": "{}"}}
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "42.00 EUR"},
        ],
        "tools": [{"type": "function", "function": {"name": "order_total", "parameters": ORDER_SCHEMA}}],
    }
    assert ModelCall.from_openai(chat).result_text("c1") == ("42.00 EUR", False)
    assert model.openai()(chat) == Reply(text="It costs 42.")


# -- the loop, end to end -------------------------------------------------------------------------

AGENTS = """
[agents.counter]
description = "Counts things"
instructions = "You count things with the tally tool."
tools = ["tally"]
"""
TOOL_MODULE = '''
from tools import tool


@tool(effect="read")
def tally(label: str) -> str:
    """Count one thing."""
    return f"{WORD} {label}"
'''
SCRIPT = """
[[agents.counter.turns]]
tool_calls = [{ tool = "tally", arguments = { label = "scripted" } }]
"""


class DevLoopProcess:
    """`python -m devstack` as a subprocess; its output collected line by line."""

    def __init__(self, folder: Path, *args: str) -> None:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("TEMPORAL_", "AGENTS_FILE", "TOOL_MODULES", "BLOB_STORE"))
        }
        env["PYTHONPATH"] = str(ROOT)
        self.log = folder / "dev.out"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "devstack", *args],
            cwd=folder,
            env=env,
            stdout=open(self.log, "wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its worker and servers are its own to stop
        )

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def wait_for(self, pattern: str, count: int = 1, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while len(re.findall(pattern, self.output)) < count:
            assert self.proc.poll() is None, f"the dev loop exited:\n{self.output}"
            assert time.monotonic() < deadline, f"no {pattern!r} (x{count}) in:\n{self.output}"
            await asyncio.sleep(0.2)
        return self.output

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(40)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            raise


async def run_counter(address: str) -> str:
    client = await Client.connect(address)
    result = await client.execute_workflow(
        "AgentLoopWorkflow",
        {"agent": "counter", "prompt": "Count one."},
        id=workflow_id("dev-loop"),
        task_queue="agents",
        execution_timeout=timedelta(seconds=30),
    )
    assert result["status"] == "completed", result
    return result["output"]


async def test_the_dev_loop_runs_your_agent_and_follows_your_edits(tmp_path):
    (tmp_path / "agents.toml").write_text(AGENTS)
    module = tmp_path / "dev_loop_tools.py"
    module.write_text(TOOL_MODULE.replace("{WORD}", "tallied"))
    script = tmp_path / "script.toml"
    script.write_text('[[prompts]]\nmatch = "^nothing matches this$"\nturns = [{ text = "x" }]\n')
    port = free_port()
    loop = DevLoopProcess(
        tmp_path, "--agents", "agents.toml", "--tools", "dev_loop_tools", "--script", "script.toml",
        "--port", str(port), "--ui-port", "0", "--state-dir", str(tmp_path / "state"),
    )  # fmt: skip
    try:
        out = await loop.wait_for(r"Worker ready")
        address = f"127.0.0.1:{port}"
        assert f"workflow start --address {address} --task-queue agents --type AgentLoopWorkflow" in out
        assert '\'{"agent": "counter", "prompt": "Hello! What can you do?"}\'' in out
        assert "Watching          agents.toml, dev_loop_tools.py, script.toml" in out

        # Unscripted: the agent calls its tool with arguments made from its schema, then names the result.
        assert await run_counter(address) == "(scripted model) tally returned: tallied example."
        assert "model: counter <- each of its tools once: tally" in loop.output

        # The script changes: the model rereads it, and the next run follows it (no worker restart needed).
        script.write_text(SCRIPT)
        await loop.wait_for(r"Script script.toml loaded: agents counter")
        assert await run_counter(address) == "(scripted model) tally returned: tallied scripted."
        assert "model: counter <- script [agents.counter] turn 1 of 1" in loop.output

        # The tool module changes: the worker restarts with it.
        module.write_text(TOOL_MODULE.replace("{WORD}", "counted"))
        await loop.wait_for(r"Worker ready", count=2)
        assert "Changed: dev_loop_tools.py" in loop.output
        assert await run_counter(address) == "(scripted model) tally returned: counted scripted."
    finally:
        code = loop.stop()
    assert code == 0, loop.output
    assert "Dev server stopped." in loop.output
