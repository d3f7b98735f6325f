"""Your own agents end to end on the dev server: an agents file, a tool module and a stdio MCP server.

The runs are started and approved with the `temporal` CLI, as a user would; the scripted fake model calls
each tool, and what the tools answered reaches the model and the result. Pinning: a run keeps the spec it
started with across a changed file and a restarted worker.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
import textwrap
from pathlib import Path

import pytest

from devstack.dev_server import temporal_cli
from devstack.fake_anthropic import Reply
from tests.conftest import workflow_id
from tests.helpers import eventually, pending_approvals

FIXTURES = Path(__file__).parent / "fixtures"
AGENTS = FIXTURES / "agents"
SERVER = FIXTURES / "crm_mcp_server.py"
REFUND_ANSWER = {"order_id": "A1", "refunded": 51.0, "message": "Refunded order A1."}


def agents_file(tmp_path: Path, body: str) -> Path:
    """An agents file in its own folder (the MCP server path is absolute, so the folder does not matter)."""
    path = tmp_path / "agents" / "agents.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(body).replace("@SERVER@", str(SERVER)))
    return path


CRM = """
[mcp_servers.crm]
command = ["python", "@SERVER@"]
env = { CRM_DB = "${CRM_DB}" }
approval_tools = ["refund_*"]
timeout_seconds = 8
max_attempts = 3
"""


@pytest.fixture
def own_env(tmp_path, worker_process_env) -> dict[str, str]:
    """What a worker process needs for the fixture module and server: PYTHONPATH, CRM_DB, the venv's `python`."""
    return {
        "TOOL_MODULES": "support_tools",
        "PYTHONPATH": os.pathsep.join([str(AGENTS), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
        "CRM_DB": str(tmp_path / "crm.db"),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }


def refunds(env: dict[str, str]) -> list[tuple[str, str, float]]:
    path = env["CRM_DB"]
    if not Path(path).exists():
        return []
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT idempotency_key, order_id, amount FROM refunds ORDER BY idempotency_key").fetchall()


def cli(dev_server, *args: str) -> str:
    import subprocess

    done = subprocess.run(
        [temporal_cli(), *args, "--address", dev_server.address], capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def tool_results(fake_llm) -> dict[str, str]:
    """Every tool result the model was shown, by tool name (taken from the assistant turn that asked)."""
    shown: dict[str, str] = {}
    for request in fake_llm.requests:
        messages = request.messages
        for i, message in enumerate(messages[1:], start=1):
            names = {
                b["id"]: b["name"]
                for b in messages[i - 1].get("content", [])
                if isinstance(b, dict) and b.get("type") == "tool_use"
            }
            for block in message.get("content", []) if isinstance(message.get("content"), list) else []:
                if isinstance(block, dict) and block.get("type") == "tool_result":
                    content = block["content"]
                    text = content if isinstance(content, str) else "".join(c.get("text", "") for c in content)
                    shown[names[block["tool_use_id"]]] = text
    return shown


async def test_a_file_agent_uses_module_tools_and_mcp_tools_started_and_approved_with_the_cli(
    client, dev_server, settings, fake_llm, worker_processes, own_env, tmp_path
):
    path = agents_file(
        tmp_path,
        """
        [agents.support]
        description = "Answers questions about orders and refunds them"
        instructions = "You help customers with their orders."
        tools = ["order_total", "shipping_days", "mcp:crm"]
        output_schema = "refund.json"
        """
        + CRM,
    )
    (path.parent / "refund.json").write_text((AGENTS / "schemas" / "refund.json").read_text())
    worker_processes(AGENTS_FILE=str(path), **own_env)
    fake_llm.push(
        Reply(
            tool_calls=[
                ("order_total", {"order_id": "A1"}),
                ("shipping_days", {"country": "de"}),
                ("crm__lookup_order", {"order_id": "A1"}),
            ]
        ),
        Reply(tool_calls=[("crm__refund_order", {"order_id": "A1", "amount": 51.0})]),
        Reply(text=json.dumps(REFUND_ANSWER)),
    )
    wid = workflow_id("own-agent")
    cli(
        dev_server,
        "workflow",
        "start",
        "--type",
        "AgentLoopWorkflow",
        "--task-queue",
        settings.task_queue,
        "--workflow-id",
        wid,
        "--input",
        json.dumps({"agent": "support", "prompt": "Refund order A1 with tax."}),
    )
    handle = client.get_workflow_handle(wid)
    [pending] = await pending_approvals(handle, timeout=60)
    assert pending["proposal"] == {"tool": "crm__refund_order", "arguments": {"order_id": "A1", "amount": 51.0}}
    assert refunds(own_env) == []  # nothing happens before a person says yes
    cli(
        dev_server,
        "workflow",
        "signal",
        "--workflow-id",
        wid,
        "--name",
        "approve",
        "--input",
        json.dumps({"approver": "alice", "request_id": pending["request_id"]}),
    )
    result = await handle.result()

    assert result["status"] == "completed"
    assert result["output"] == REFUND_ANSWER  # validated against the file's output schema: JSON, not text
    assert result["usage"]["tool_calls"] == 4
    shown = tool_results(fake_llm)
    assert shown["order_total"] == "51.00 EUR"
    assert json.loads(shown["shipping_days"])["days"] == 2
    assert json.loads(shown["crm__lookup_order"])["status"] == "shipped"
    assert json.loads(shown["crm__refund_order"]) == {"order_id": "A1", "refunded": 51.0, "new": True}
    [(key, order, amount)] = refunds(own_env)
    assert (order, amount) == ("A1", 51.0) and key.startswith(f"{wid}:")
    # The model was shown the file's instructions and exactly the agent's tools, MCP ones by <server>__<tool>.
    first = fake_llm.requests[0].body
    assert "You help customers with their orders." in json.dumps(first["system"])
    assert {t["name"] for t in first["tools"]} == {
        "order_total",
        "shipping_days",
        "crm__lookup_order",
        "crm__refund_order",
        "crm__slow_refund",
        "crm__slow_lookup",
    }


async def test_an_mcp_write_tool_rejected_never_runs(
    client, dev_server, settings, fake_llm, worker_processes, own_env, tmp_path
):
    path = agents_file(
        tmp_path, '[agents.refunder]\ninstructions = "Refund."\ntools = ["mcp:crm/refund_order"]\n' + CRM
    )
    worker_processes(AGENTS_FILE=str(path), **own_env)
    fake_llm.push(
        Reply(tool_calls=[("crm__refund_order", {"order_id": "A1", "amount": 5.0})]), Reply(text="Not refunded.")
    )
    handle = await client.start_workflow(
        "AgentLoopWorkflow",
        {"agent": "refunder", "prompt": "Refund A1."},
        id=workflow_id("own-reject"),
        task_queue=settings.task_queue,
    )
    [pending] = await pending_approvals(handle, timeout=60)
    await handle.signal("reject", {"approver": "bob", "reason": "no", "request_id": pending["request_id"]})
    result = await handle.result()
    assert result["status"] == "completed" and result["output"] == "Not refunded."
    assert refunds(own_env) == []
    assert "rejected by bob" in tool_results(fake_llm)["crm__refund_order"]


async def test_a_worker_killed_mid_mcp_call_the_retry_on_another_worker_repeats_no_effect(
    client, settings, fake_llm, worker_processes, own_env, tmp_path
):
    path = agents_file(tmp_path, '[agents.refunder]\ninstructions = "Refund."\ntools = ["mcp:crm/slow_refund"]\n' + CRM)
    first = worker_processes(AGENTS_FILE=str(path), **own_env)
    fake_llm.push(
        Reply(tool_calls=[("crm__slow_refund", {"order_id": "B2", "amount": 3.0, "seconds": 60})]),
        Reply(text="Refunded B2."),
    )
    handle = await client.start_workflow(
        "AgentLoopWorkflow",
        {"agent": "refunder", "prompt": "Refund B2."},
        id=workflow_id("own-kill"),
        task_queue=settings.task_queue,
    )
    await eventually(lambda: refunds(own_env) or None, timeout=60)  # the effect happened; the reply has not come
    first.kill()
    worker_processes(AGENTS_FILE=str(path), **own_env)
    result = await handle.result()

    assert result["status"] == "completed"
    [(_, order, amount)] = refunds(own_env)  # one effect, though the call ran twice
    assert (order, amount) == ("B2", 3.0)
    assert json.loads(tool_results(fake_llm)["crm__slow_refund"])["new"] is False  # the retry found the first
    history = await handle.fetch_history()
    started = [e for e in history.events if e.HasField("activity_task_started_event_attributes")]
    assert any(e.activity_task_started_event_attributes.attempt == 2 for e in started)


async def test_a_run_keeps_its_pinned_spec_across_a_changed_file_and_a_restarted_worker(
    client, settings, fake_llm, worker_processes, own_env, tmp_path
):
    path = agents_file(
        tmp_path,
        """
        [agents.scribe]
        instructions = "VERSION ONE: save what you are told."
        tools = ["write_note", "order_total"]
        """,
    )
    first = worker_processes(AGENTS_FILE=str(path), **own_env)
    note = {"title": "t", "body": "b"}
    fake_llm.push(Reply(tool_calls=[("write_note", note)]))
    old = await client.start_workflow(
        "AgentLoopWorkflow",
        {"agent": "scribe", "prompt": "Save t."},
        id=workflow_id("pinned-old"),
        task_queue=settings.task_queue,
    )
    [pending] = await pending_approvals(old, timeout=60)
    assert first.terminate() == 0

    # The file changes: new instructions, and the module tool is gone from the worker (and from the agent).
    agents_file(tmp_path, '[agents.scribe]\ninstructions = "VERSION TWO: only calculate."\ntools = ["calculator"]\n')
    second = worker_processes(AGENTS_FILE=str(path), **{**own_env, "TOOL_MODULES": ""})
    fake_llm.push(Reply(tool_calls=[("order_total", {"order_id": "A1"})]), Reply(text="Saved."))
    await old.signal("approve", {"approver": "alice", "request_id": pending["request_id"]})
    result = await old.result()
    assert result["status"] == "completed" and result["usage"]["tool_calls"] == 2
    old_requests = fake_llm.requests[:]
    assert all("VERSION ONE" in json.dumps(r.body["system"]) for r in old_requests)
    assert all({t["name"] for t in r.body["tools"]} == {"write_note", "order_total"} for r in old_requests)
    # The pinned spec names a tool this worker no longer has: that call fails naming the tool and the worker.
    missing = tool_results(fake_llm)["order_total"]
    assert "'order_total' is not available on worker" in missing and str(second.proc.pid) in missing

    fake_llm.push(Reply(text="42"))
    new = await client.execute_workflow(
        "AgentLoopWorkflow",
        {"agent": "scribe", "prompt": "What is 6 * 7?"},
        id=workflow_id("pinned-new"),
        task_queue=settings.task_queue,
    )
    assert new["status"] == "completed"
    latest = fake_llm.requests[-1].body
    assert "VERSION TWO" in json.dumps(latest["system"]) and {t["name"] for t in latest["tools"]} == {"calculator"}
