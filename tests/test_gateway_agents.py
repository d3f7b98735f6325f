"""`POST /v1/runs` checks the agents an input names against the workers' registry: 422 naming the field, no run.

A real worker (its registry loaded from a user agents file, as `worker.py` loads it) and the gateway on uvicorn,
both given that file, against the session's dev server. "Nothing started" is asserted with `describe`, which,
unlike visibility, is not eventually consistent: NOT_FOUND means no run under that id, running or closed.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from pathlib import Path

import pytest
from temporalio.service import RPCError, RPCStatusCode

from devstack.dev_server import free_port
from devstack.fake_anthropic import Reply
from tests.gateway_support import auth, gateway_client, running_gateway, with_gateway, write_tokens
from tests.helpers import eventually

USER_AGENTS = """
[agents.support]
description = "Answers questions about orders"
instructions = "You help customers with their orders."
tools = ["calculator"]

[agents.escalator]
instructions = "You pass hard cases on."
tools = ["calculator"]
read_only = true
handoffs = ["support"]
"""
"""`escalator` is read-only but hands off to `support`, which is not: the workers refuse it as a black box."""


def write_agents(tmp_path: Path, body: str = USER_AGENTS) -> Path:
    path = tmp_path / "agents" / "agents.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    return path


@pytest.fixture
async def api(client, settings, tmp_path):
    """A worker whose registry has the user's agents, and a gateway given the same AGENTS_FILE; yields its client."""
    from tools.loader import load_registry
    from worker import build_worker

    gw_settings = with_gateway(dataclasses.replace(settings, agents_file=str(write_agents(tmp_path))), free_port())
    loaded = await load_registry(gw_settings)
    try:
        async with (
            build_worker(client, gw_settings, loaded.registry),
            running_gateway(client, gw_settings, write_tokens(tmp_path / "tokens.toml")) as url,
            gateway_client(url) as http,
        ):
            yield http
    finally:
        await loaded.close()


async def never_started(client, workflow_id: str) -> None:
    """No run of any status exists under `workflow_id`."""
    with pytest.raises(RPCError) as raised:
        await client.get_workflow_handle(workflow_id).describe()
    assert raised.value.status == RPCStatusCode.NOT_FOUND


def start(workflow: str, **input_fields) -> dict:
    return {"workflow": workflow, "input": {"prompt": "Where is order A1?", **input_fields}, "workflow_id": new_id()}


def new_id() -> str:
    return f"agents422-{uuid.uuid4().hex[:10]}"


async def test_an_unknown_agent_is_422_naming_input_agent_and_nothing_starts(api, client):
    body = start("AgentLoopWorkflow", agent="nobody")
    response = await api.post("/v1/runs", json=body, headers=auth("alice"))
    assert response.status_code == 422, response.text
    problem = response.json()
    assert problem["field"] == "input.agent"
    assert problem["detail"] == (
        "invalid input: input.agent: unknown agent 'nobody'; "
        "known: analysis, assistant, budget, escalator, planner, researcher, support"
    )
    await never_started(client, body["workflow_id"])


async def test_an_agent_of_the_users_file_is_201_and_the_worker_runs_it(api, client, fake_llm):
    fake_llm.push(Reply(text="Order A1 ships tomorrow."))
    body = start("AgentLoopWorkflow", agent="support")
    response = await api.post("/v1/runs", json=body, headers=auth("alice"))
    assert response.status_code == 201, response.text

    async def finished():
        view = (await api.get(f"/v1/runs/{body['workflow_id']}", headers=auth("alice"))).json()
        return view if view["temporal_status"] != "RUNNING" else None

    view = await eventually(finished, 30)
    assert view["temporal_status"] == "COMPLETED", view
    assert view["result"]["output"] == "Order A1 ships tomorrow."
    assert "You help customers with their orders." in str(fake_llm.requests[0].body["system"])  # the file's agent ran
    fake_llm.assert_script_consumed()


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (start("HybridAgentWorkflow", agent="nobody"), "input.agent", "unknown agent 'nobody'; known: analysis,"),
        (start("BlackBoxAgentWorkflow", agent="nobody"), "input.agent", "unknown agent 'nobody'; known: analysis,"),
        (
            start(
                "BlackBoxAgentWorkflow",
                steps=[{"agent": "support", "prompt": "a"}, {"agent": "nobody", "prompt": "b"}],
            ),
            "input.steps.1.agent",
            "unknown agent 'nobody'; known: analysis,",
        ),
        (
            start("BlackBoxAgentWorkflow", steps=[{"agent": "escalator", "prompt": "a"}]),
            "input.steps.0.agent",
            "agent 'escalator' can hand off to 'support', which is not read-only",
        ),
    ],
    ids=["hybrid-agent", "black-box-agent", "black-box-step", "black-box-handoff"],
)
async def test_hybrid_and_black_box_inputs_naming_an_agent_the_workers_refuse_are_422(
    api, client, body, field, message
):
    response = await api.post("/v1/runs", json=body, headers=auth("alice"))
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert response.json()["detail"].startswith(f"invalid input: {field}: {message}")
    await never_started(client, body["workflow_id"])


async def test_a_gateway_without_agents_file_knows_the_built_ins_and_says_what_to_set(client, settings, tmp_path):
    gw_settings = with_gateway(settings, free_port())
    assert gw_settings.agents_file is None
    async with (
        running_gateway(client, gw_settings, write_tokens(tmp_path / "tokens.toml")) as url,
        gateway_client(url) as http,
    ):
        body = start("AgentLoopWorkflow", agent="support")
        response = await http.post("/v1/runs", json=body, headers=auth("alice"))
    assert response.status_code == 422, response.text
    assert response.json()["field"] == "input.agent"
    detail = response.json()["detail"]
    assert "unknown agent 'support'; known: analysis, assistant, budget, planner, researcher (" in detail
    assert "this gateway has no AGENTS_FILE" in detail
    await never_started(client, body["workflow_id"])


# --- reading the file -------------------------------------------------------------------------------


def test_the_gateway_reads_names_only_no_tool_module_or_mcp_server_needed(tmp_path):
    from gateway.known_agents import KnownAgents
    from models.run import AgentRunInput

    path = write_agents(
        tmp_path,
        '[agents.refunder]\ninstructions = "Refund."\ntools = ["order_total", "mcp:crm/refund"]\n\n'
        '[mcp_servers.crm]\ncommand = ["no-such-program-anywhere"]\nenv = { CRM_TOKEN = "${CRM_TOKEN}" }\n',
    )
    known = KnownAgents.load(str(path))
    known.check(AgentRunInput(prompt="x", agent="refunder"))  # no 422: the tools are the workers' business
    assert known.current().agents["refunder"].source == str(path.resolve())


def test_a_changed_file_is_read_again_and_a_broken_one_keeps_the_agents_read_before(tmp_path, caplog):
    from gateway.http import ApiError
    from gateway.known_agents import KnownAgents
    from models.run import AgentRunInput

    path = write_agents(tmp_path)
    known = KnownAgents.load(str(path))
    with pytest.raises(ApiError, match="unknown agent 'newcomer'"):
        known.check(AgentRunInput(prompt="x", agent="newcomer"))

    path.write_text(USER_AGENTS + '\n[agents.newcomer]\ninstructions = "New."\n')
    known.check(AgentRunInput(prompt="x", agent="newcomer"))

    with caplog.at_level(logging.WARNING, logger="gateway"):
        path.write_text(USER_AGENTS + "\n[agents.newcomer\n")
        known.check(AgentRunInput(prompt="x", agent="newcomer"))
    assert "AGENTS_FILE changed but has problems" in caplog.text and "TOML syntax error" in caplog.text


def test_a_broken_agents_file_stops_python_m_gateway_before_it_connects(tmp_path, monkeypatch, capsys):
    """Exit 2 and the file's problems, as a worker stops: Temporal is not even tried (its address here is closed)."""
    from gateway.__main__ import main

    path = write_agents(tmp_path, '[agents.assistant]\ninstructions = "Mine."\n\n[agents.lost]\nhandoffs = ["x"]\n')
    for name, value in {
        "TEMPORAL_ADDRESS": f"127.0.0.1:{free_port()}",
        "GATEWAY_PORT": str(free_port()),
        "GATEWAY_TOKENS": str(write_tokens(tmp_path / "tokens.toml")),
        "GATEWAY_ID_SECRET": "gateway-ids-" + "0" * 32,
        "AGENTS_FILE": str(path),
    }.items():
        monkeypatch.setenv(name, value)
    assert main([]) == 2
    stderr = capsys.readouterr().err
    assert stderr.startswith("gateway: your agents and tools have 2 problems:"), stderr
    assert (
        f"{path.resolve()}: [agents.assistant] (line 1): agent 'assistant' is defined twice (also built-in)" in stderr
    )
    assert "agent 'lost': instructions: Field required" in stderr
    assert "Temporal" not in stderr
