"""The agents file and TOOL_MODULES: what loads, and every start-up check with its message."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from config.settings import Settings
from models.errors import AgentsFileInvalid
from tools.loader import load_registry
from tools.pinning import PLANNER

ROOT = Path(__file__).parent.parent
AGENTS = Path(__file__).parent / "fixtures" / "agents"
SERVER = Path(__file__).parent / "fixtures" / "crm_mcp_server.py"


@pytest.fixture
def env(tmp_path, monkeypatch) -> dict[str, str]:
    """The worker environment of the fixture file: the module on PYTHONPATH, the CRM server's files, `python` on PATH."""
    monkeypatch.setenv(
        "PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    )  # `python` = the venv's
    monkeypatch.syspath_prepend(str(AGENTS))
    return {
        "AGENTS_FILE": str(AGENTS / "agents.toml"),
        "TOOL_MODULES": "support_tools",
        "CRM_DB": str(tmp_path / "crm.db"),
        "CRM_PID_FILE": str(tmp_path / "crm.pid"),
        "PATH": os.environ["PATH"],
    }


async def _problems(env: dict[str, str], toml: str, tmp_path: Path, **files: str) -> list[str]:
    """The problems load_registry reports for `toml` (written to tmp_path/agents.toml with `files` beside it)."""
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(textwrap.dedent(text))
    path = tmp_path / "agents.toml"
    path.write_text(textwrap.dedent(toml))
    with pytest.raises(AgentsFileInvalid) as invalid:
        loaded = await load_registry(Settings.from_env({**env, "AGENTS_FILE": str(path)}))
        await loaded.close()
    return invalid.value.problems


async def test_fixture_file_loads_agents_module_tools_and_mcp_tools(env):
    loaded = await load_registry(Settings.from_env(env))
    try:
        registry = loaded.registry
        support = registry.agent("support")
        assert support.tools == (
            "calculator",
            "order_total",
            "shipping_days",
            "crm__lookup_order",
            "crm__refund_order",
            "crm__slow_refund",
            "crm__slow_lookup",
        )
        assert support.source == str(AGENTS / "agents.toml") and support.model == "anthropic:claude-sonnet-5-5"
        assert support.output_schema["title"] == "RefundAnswer" and support.max_turns == 8
        status = registry.agent("order_status")
        assert status.tools == ("crm__lookup_order",) and status.read_only
        assert status.output_schema["required"] == ["status"] and "$defs" in status.output_schema  # its $ref resolved
        refund = registry.tools["crm__refund_order"]
        assert refund.effect == "write" and refund.requires_approval and refund.retry.maximum_attempts == 3
        assert not registry.tools["crm__slow_lookup"].requires_approval
        planner = registry.agent(PLANNER).instructions
        assert "- support: Answers questions about orders and refunds them" in planner
        assert "- order_status: Tells an order's status" in planner and "- budget:" in planner
        assert "log_contact" in registry.tools  # every @tool of the module is registered
    finally:
        await loaded.close()


async def test_toml_syntax_error_names_the_line(env, tmp_path):
    [problem] = await _problems(env, '[agents.a]\ninstructions = "x"\ntools = [1 2]\n', tmp_path)
    assert problem.startswith(f"{tmp_path / 'agents.toml'}: TOML syntax error") and "line 3" in problem


async def test_a_table_defined_twice_is_a_syntax_error(env, tmp_path):
    [problem] = await _problems(env, '[agents.a]\ninstructions = "x"\n[agents.a]\ninstructions = "y"\n', tmp_path)
    assert "TOML syntax error" in problem and "line 3" in problem


async def test_unknown_keys_name_table_line_and_key_and_the_rest_is_still_checked(env, tmp_path):
    problems = await _problems(
        env,
        """
        colour = "red"

        [agents.a]
        instructions = "x"
        temperature = 0.2
        tools = ["nope"]

        [mcp_servers.crm]
        command = ["python", "x.py"]
        cwd = "/tmp"
        """,
        tmp_path,
    )
    file = tmp_path / "agents.toml"
    assert f"{file}: unknown top-level key 'colour' (expected [agents.NAME] and [mcp_servers.NAME] tables)" in problems
    assert f"{file}: [agents.a] (line 4): agent 'a': unknown key 'temperature'" in problems
    assert f"{file}: [mcp_servers.crm] (line 9): MCP server 'crm': unknown key 'cwd'" in problems
    assert any("agent 'a': unknown tool 'nope' (known: " in p for p in problems)


async def test_unknown_tools_servers_and_server_tools(env, tmp_path):
    problems = await _problems(
        env,
        f"""
        [agents.a]
        instructions = "x"
        tools = ["calculator", "nope", "mcp:ghost", "mcp:crm/refund_everything"]

        [mcp_servers.crm]
        command = ["python", "{SERVER}"]
        env = {{ CRM_DB = "${{CRM_DB}}" }}
        """,
        tmp_path,
    )
    assert len(problems) == 3
    assert "[agents.a] (line 2): agent 'a': unknown tool 'nope' (known: calculate_budget, calculator," in problems[0]
    assert problems[1].endswith("agent 'a': tool 'mcp:ghost' names unknown MCP server 'ghost'")
    assert problems[2].endswith(
        "agent 'a': MCP server 'crm' has no tool 'refund_everything' (it lists: lookup_order, refund_order, slow_refund, slow_lookup)"
    )


async def test_names_defined_twice_also_against_built_ins(env, tmp_path, monkeypatch):
    module = f"dup_tools_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(
        'from tools import tool\n\n@tool(effect="read")\ndef calculator(x: int) -> int:\n    """Shadows."""\n    return x\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    problems = await _problems(
        {**env, "TOOL_MODULES": f"support_tools,{module}"},
        '[agents.assistant]\ninstructions = "mine"\n[agents.budget]\ninstructions = "mine too"\n',
        tmp_path,
    )
    assert problems[0] == f"TOOL_MODULES: module {module!r}: tool 'calculator' is defined twice (also built-in)"
    assert problems[1].endswith("[agents.assistant] (line 1): agent 'assistant' is defined twice (also built-in)")
    assert problems[2].endswith("[agents.budget] (line 3): agent 'budget' is defined twice (also built-in)")


async def test_bad_json_schemas_inline_file_and_missing(env, tmp_path):
    problems = await _problems(
        env,
        """
        [agents.inline]
        instructions = "x"
        output_schema = { type = "objekt" }

        [agents.from_file]
        instructions = "x"
        output_schema = "schemas/bad.json"

        [agents.not_json]
        instructions = "x"
        output_schema = "schemas/broken.json"

        [agents.missing]
        instructions = "x"
        output_schema = "schemas/none.json"
        """,
        tmp_path,
        **{"schemas/bad.json": '{"type": "object", "required": "all"}', "schemas/broken.json": "{nope"},
    )
    assert len(problems) == 4
    assert "[agents.inline] (line 2): agent 'inline': output_schema is not a valid JSON Schema at type:" in problems[0]
    assert (
        "agent 'from_file': output_schema is not a valid JSON Schema at required: 'all' is not of type 'array'"
        in (problems[1])
    )
    assert "agent 'not_json': output_schema file 'schemas/broken.json' is not JSON" in problems[2]
    assert "agent 'missing': output_schema file 'schemas/none.json': No such file or directory" in problems[3]


async def test_output_schema_references_must_resolve_inside_the_schema(env, tmp_path):
    problems = await _problems(
        env,
        """
        [agents.inline]
        instructions = "x"
        output_schema = { type = "object", properties = { total = { "$ref" = "#/$defs/missing" } } }

        [agents.draft7]
        instructions = "x"
        output_schema = "schemas/draft7.json"

        [agents.nested]
        instructions = "x"
        output_schema = "schemas/nested.json"

        [agents.remote]
        instructions = "x"
        output_schema = { "$ref" = "https://example.com/order.json" }

        [agents.loop]
        instructions = "x"
        output_schema = { "$ref" = "#" }

        [agents.fine]
        instructions = "x"
        output_schema = { "$defs" = { money = { type = "number" } }, properties = { total = { "$ref" = "#/$defs/money" } } }
        """,
        tmp_path,
        **{
            "schemas/draft7.json": json.dumps(
                {
                    "$schema": "http://json-schema.org/draft-07/schema#",
                    "definitions": {"y": {"type": "string"}},
                    "properties": {"x": {"$ref": "#/definitions/x"}, "y": {"$ref": "#/definitions/y"}},
                }
            ),
            "schemas/nested.json": json.dumps(
                {
                    "$defs": {"a": {"type": "array", "items": {"$ref": "#/$defs/b"}}},
                    "properties": {"list": {"$ref": "#/$defs/a"}},
                }
            ),
        },
    )
    where = tmp_path / "agents.toml"
    assert problems == [
        f"{where}: [agents.inline] (line 2): agent 'inline': output_schema: $ref '#/$defs/missing' points to "
        "nothing in the schema (define what it names, e.g. under $defs, or fix the $ref)",
        f"{where}: [agents.draft7] (line 6): agent 'draft7': output_schema file 'schemas/draft7.json': "
        "$ref '#/definitions/x' points to nothing in the schema (define what it names, e.g. under $defs, or fix the $ref)",
        f"{where}: [agents.nested] (line 10): agent 'nested': output_schema file 'schemas/nested.json': "
        "$ref '#/$defs/b' points to nothing in the schema (define what it names, e.g. under $defs, or fix the $ref)",
        f"{where}: [agents.remote] (line 14): agent 'remote': output_schema: $ref 'https://example.com/order.json' "
        "is remote: workers never fetch schemas (copy what it defines into this schema's $defs)",
        f"{where}: [agents.loop] (line 18): agent 'loop': output_schema: $refs loop without descending into the "
        "answer, so no answer can be checked",
    ]


async def test_unimportable_tool_modules(env, tmp_path, monkeypatch):
    broken = f"broken_tools_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{broken}.py").write_text(
        'from tools import tool\n\n@tool(effect="read")\ndef f(x: int) -> int:\n    return x\n'
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    problems = await _problems({**env, "TOOL_MODULES": f"no_such_module_here,{broken}"}, "", tmp_path)
    assert problems[0] == (
        "TOOL_MODULES: cannot import module 'no_such_module_here': "
        "ModuleNotFoundError: No module named 'no_such_module_here'"
    )
    assert problems[1].startswith(f"TOOL_MODULES: cannot import module {broken!r}: ToolDeclarationError:")
    assert f"{broken}.f: add a docstring" in problems[1]


async def test_mcp_server_that_does_not_start_or_list_in_time(env, tmp_path):
    problems = await _problems(
        env,
        """
        [agents.a]
        instructions = "x"
        tools = ["mcp:dead", "mcp:mute"]

        [mcp_servers.dead]
        command = ["./no-such-server"]

        [mcp_servers.mute]
        command = ["python", "-c", "import time; time.sleep(60)"]
        timeout_seconds = 1

        [mcp_servers.both]
        command = ["python"]
        url = "http://127.0.0.1:9/mcp"
        """,
        tmp_path,
    )
    assert len(problems) == 3  # the agent's tools are not blamed for its servers' problems
    assert problems[0].endswith(
        "[mcp_servers.both] (line 13): MCP server 'both': give either command (stdio) or url (Streamable HTTP)"
    )
    assert "[mcp_servers.dead] (line 6): MCP server 'dead' (command ['./no-such-server']) did not start:" in problems[1]
    assert problems[2].endswith(
        "[mcp_servers.mute] (line 9): MCP server 'mute' (command ['python', '-c', 'import time; time.sleep(60)']) "
        "did not start and list its tools within 1s (timeout_seconds)"
    )


def _check_agents(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tools", "check-agents", str(path)],
        cwd=ROOT,
        env={**os.environ, **env, "PYTHONPATH": str(AGENTS)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_agents_command_exit_codes_and_messages(env, tmp_path):
    good = _check_agents(AGENTS / "agents.toml", env)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "ok: 2 agent(s)" in good.stdout and "order_status: crm__lookup_order" in good.stdout
    bad_file = tmp_path / "bad.toml"
    bad_file.write_text('[agents.a]\ninstructions = "x"\ntools = ["nope"]\n')
    bad = _check_agents(bad_file, env)
    assert bad.returncode == 1
    assert bad.stdout.startswith(f"{bad_file}: [agents.a] (line 1): agent 'a': unknown tool 'nope'")
    assert "1 problem(s) found" in bad.stderr


def test_check_agents_command_fails_on_a_dangling_ref(env, tmp_path):
    bad_file = tmp_path / "bad.toml"
    bad_file.write_text('[agents.a]\ninstructions = "x"\noutput_schema = { "$ref" = "#/$defs/answer" }\n')
    bad = _check_agents(bad_file, env)
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert bad.stdout == (
        f"{bad_file}: [agents.a] (line 1): agent 'a': output_schema: $ref '#/$defs/answer' points to nothing in "
        "the schema (define what it names, e.g. under $defs, or fix the $ref)\n"
    )
    assert "1 problem(s) found" in bad.stderr


def test_worker_refuses_to_start_with_every_problem_on_stderr(env, tmp_path):
    bad_file = tmp_path / "bad.toml"
    bad_file.write_text('[agents.a]\ninstructions = "x"\ntools = ["nope"]\nextra = 1\n')
    started = subprocess.run(
        [sys.executable, "worker.py"],
        cwd=ROOT,
        env={
            **os.environ,
            **env,
            "AGENTS_FILE": str(bad_file),
            "PYTHONPATH": str(AGENTS),
            "TEMPORAL_ADDRESS": "127.0.0.1:9",
        },
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode == 2
    assert "your agents and tools have 2 problems" in started.stderr
    assert f"{bad_file}: [agents.a] (line 1): agent 'a': unknown key 'extra'" in started.stderr
    assert "unknown tool 'nope'" in started.stderr and "cannot reach Temporal" not in started.stderr
