"""The demo behind `./scripts/demo`: dev server + UI, worker, one AgentLoopWorkflow, approval, result.

    python -m devstack.demo [--prompt TEXT] [--auto-approve] [--exit]

Without ANTHROPIC_API_KEY it runs against the scripted local model server and says so.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

from config.temporal import connect
from devstack.dev_server import port_open, start_dev_server, temporal_cli
from devstack.fake_anthropic import FakeAnthropic
from devstack.scripted_model import respond

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PROMPT = "What is 6000 * 0.2? Then save a note with the answer."


def say(text: str = "") -> None:
    """Print for the person running the demo."""
    print(text, flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompt", default=DEFAULT_PROMPT)
    parser.add_argument("--auto-approve", action="store_true", help="approve as 'demo' with the CLI, without asking")
    parser.add_argument("--exit", action="store_true", help="stop the dev server at the end instead of keeping the UI up")
    return parser.parse_args(argv)


def start_cluster() -> tuple[str, str, object | None]:
    """Use TEMPORAL_ADDRESS, or a dev server already on 7233, or start one; returns (address, ui, server)."""
    if os.environ.get("TEMPORAL_ADDRESS"):
        say(f"Using the Temporal cluster at {os.environ['TEMPORAL_ADDRESS']} (TEMPORAL_ADDRESS).")
        return os.environ["TEMPORAL_ADDRESS"], os.environ.get("TEMPORAL_UI_URL", "http://localhost:8233"), None
    if port_open(7233):
        say("Using the Temporal dev server already listening on 127.0.0.1:7233.")
        return "127.0.0.1:7233", "http://localhost:8233", None
    server = start_dev_server(db_file=str(ROOT / ".temporal" / "dev.db"))
    say(f"Started the Temporal dev server (SQLite: .temporal/dev.db, log: {server.log_path}); UI on {server.ui_url}")
    return server.address, server.ui_url, server


def start_model_server() -> FakeAnthropic | None:
    """The scripted local model server when no ANTHROPIC_API_KEY is set."""
    if os.environ.get("ANTHROPIC_API_KEY"):
        say("Using Claude (ANTHROPIC_API_KEY is set).")
        return None
    fake = FakeAnthropic(responder=respond).start()
    say(f"No ANTHROPIC_API_KEY set: running against the SCRIPTED LOCAL MODEL SERVER at {fake.url} (answers are canned, not Claude's).")
    return fake


def start_worker(address: str, fake: FakeAnthropic | None) -> subprocess.Popen:
    """`python worker.py` in the background, logging to .temporal/worker.log."""
    env = {**os.environ, "TEMPORAL_ADDRESS": address}
    if fake is not None:
        env.update(ANTHROPIC_BASE_URL=fake.url, ANTHROPIC_API_KEY="offline-demo-no-key")
    log_path = ROOT / ".temporal" / "worker.log"
    log_path.parent.mkdir(exist_ok=True)
    proc = subprocess.Popen([sys.executable, str(ROOT / "worker.py")], cwd=ROOT, env=env, stdout=open(log_path, "ab"), stderr=subprocess.STDOUT)
    say(f"Started the worker (pid {proc.pid}, log .temporal/worker.log).")
    return proc


def cli_name() -> str:
    """How to type the `temporal` CLI from the repository root."""
    path = Path(temporal_cli())
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else "temporal"


def approve_with_cli(address: str, workflow_id: str, approver: str) -> None:
    """Send `approve` exactly as a user would from a terminal."""
    payload = json.dumps({"approver": approver, "comment": "approved from the demo"})
    subprocess.run(
        [temporal_cli(), "workflow", "signal", "--address", address, "--workflow-id", workflow_id, "--name", "approve", "--input", payload],
        check=True, stdout=subprocess.DEVNULL,
    )


async def run_agent(address: str, ui: str, prompt: str, auto_approve: bool) -> dict:
    """Start the workflow, handle approvals, return its result."""
    client = await connect(target_host=address)
    workflow_id = f"demo-{uuid.uuid4().hex[:8]}"
    handle = await client.start_workflow(
        "AgentLoopWorkflow", {"prompt": prompt, "customer_id": "C123"}, id=workflow_id, task_queue=os.environ.get("TEMPORAL_TASK_QUEUE", "agents")
    )
    link = f"{ui}/namespaces/{client.namespace}/workflows/{workflow_id}"
    say(f"\nStarted AgentLoopWorkflow {workflow_id}\n  prompt: {prompt}\n  watch it: {link}\n")
    announced: set[str] = set()
    enter_pressed = threading.Event()
    result_task = asyncio.ensure_future(handle.result())
    while not result_task.done():
        status = await handle.query("status")
        for pending in status["pending_approvals"]:
            if pending["request_id"] in announced:
                continue
            announced.add(pending["request_id"])
            say(f"Waiting for approval ({pending['request_id']}): {pending['summary']}")
            say(f"  in the UI: {link} -> More Actions -> Send a Signal -> approve, data {{\"approver\": \"you\"}}")
            say(f"  or run:    {cli_name()} workflow signal --workflow-id {workflow_id} --name approve --input '{{\"approver\": \"you\"}}'")
            if auto_approve:
                approve_with_cli(address, workflow_id, "demo")
                say("  --auto-approve: approved as 'demo' with the temporal CLI.")
            else:
                say("  or press Enter here to approve as 'you'.")
                threading.Thread(target=lambda: (sys.stdin.readline(), enter_pressed.set()), daemon=True).start()
        if enter_pressed.is_set():
            enter_pressed.clear()
            await handle.signal("approve", {"approver": "you", "comment": "approved at the demo prompt"})
        await asyncio.wait({result_task}, timeout=0.5)
    result = result_task.result()
    say("Result:\n" + json.dumps(result, indent=2))
    say(f"\nSee every step in the Temporal UI: {link}")
    return result


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns 0 when the agent completed."""
    args = parse_args(argv)
    address, ui, server = start_cluster()
    fake = start_model_server()
    worker = start_worker(address, fake)
    try:
        result = asyncio.run(run_agent(address, ui, args.prompt, args.auto_approve))
    finally:
        worker.terminate()
        worker.wait(30)
        if fake is not None:
            fake.stop()
    if server is not None and not args.exit:
        say(f"\nThe dev server keeps running so you can explore the UI at {ui}. Press Ctrl-C to stop it.")
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
    if server is not None:
        server.stop()
        say("Dev server stopped.")
    return 0 if result["status"] == "completed" else 1


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)
