"""The demo behind `./scripts/demo`: dev server + UI, worker, one hybrid agent run (or a plain loop), approval, result.

    python -m devstack.demo [--workflow {hybrid,loop}] [--prompt TEXT] [--auto-approve] [--exit]

The default, `hybrid`, is the personal-finance advisor: a plan, two specialists in parallel,
your approval of the plan, a step-by-step execution and a notification in NOTIFY_OUTBOX.

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
from collections.abc import AsyncIterator
from typing import Any

from temporalio.client import WorkflowHandle

from config.settings import Settings
from devstack import stack
from devstack.dev_server import temporal_cli
from devstack.fake_anthropic import FakeAnthropic
from devstack.scripted_model import respond
from devstack.stack import ROOT, STATE, cli_name, say, start_cluster
from progress.reader import follow_events
from progress.render import Renderer
from service.connect import connect
from telemetry.tracing import shutdown_tracing

DEFAULT_PROMPTS = {
    "hybrid": "My income is 6000 a month; plan a budget and decide whether to invest 500 a month.",
    "loop": "What is 6000 * 0.2? Then save a note with the answer.",
}
WORKFLOW_TYPES = {"hybrid": "HybridAgentWorkflow", "loop": "AgentLoopWorkflow"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workflow",
        choices=sorted(WORKFLOW_TYPES),
        default="hybrid",
        help="hybrid: plan, specialists, approval, execution, notification (default); loop: one agent loop",
    )
    parser.add_argument("--prompt", default=None, help="what to ask (default depends on --workflow)")
    parser.add_argument("--auto-approve", action="store_true", help="approve as 'demo' with the CLI, without asking")
    parser.add_argument(
        "--exit", action="store_true", help="stop the dev server at the end instead of keeping the UI up"
    )
    args = parser.parse_args(argv)
    args.prompt = args.prompt or DEFAULT_PROMPTS[args.workflow]
    return args


def start_model_server() -> FakeAnthropic | None:
    """The scripted local model server when no ANTHROPIC_API_KEY is set."""
    if os.environ.get("ANTHROPIC_API_KEY"):
        say("Using Claude (ANTHROPIC_API_KEY is set).")
        return None
    fake = FakeAnthropic(responder=respond).start()
    say(
        f"No ANTHROPIC_API_KEY set: running against the SCRIPTED LOCAL MODEL SERVER at {fake.url} (answers are canned, not Claude's)."
    )
    return fake


def start_worker(address: str, fake: FakeAnthropic | None) -> subprocess.Popen[bytes]:
    """`python worker.py` in the background, logging to .temporal/worker.log."""
    env = {**os.environ, "TEMPORAL_ADDRESS": address}
    if fake is not None:
        env.update(ANTHROPIC_BASE_URL=fake.url, ANTHROPIC_API_KEY="offline-demo-no-key")
    env.setdefault("NOTIFY_OUTBOX", str(ROOT / "outbox.jsonl"))
    proc = stack.start_worker(env, STATE / "worker.log")
    say(f"Started the worker (pid {proc.pid}, log .temporal/worker.log).")
    return proc


def approve_with_cli(address: str, workflow_id: str, approver: str, request_id: str) -> None:
    """Send `approve` for one request exactly as a user would from a terminal."""
    payload = json.dumps({"approver": approver, "comment": "approved from the demo", "request_id": request_id})
    subprocess.run(
        [
            temporal_cli(),
            "workflow",
            "signal",
            "--address",
            address,
            "--workflow-id",
            workflow_id,
            "--name",
            "approve",
            "--input",
            payload,
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )


async def run_agent(
    address: str,
    ui: str,
    prompt: str,
    auto_approve: bool,
    workflow: str = "hybrid",
    worker: subprocess.Popen[bytes] | None = None,
) -> dict[str, Any]:
    """Start the workflow (once `worker` polls, when given), report its stages, handle approvals, return its result."""
    client = await connect(Settings.from_env(), target_host=address)
    workflow_id = f"demo-{uuid.uuid4().hex[:8]}"
    workflow_type = WORKFLOW_TYPES[workflow]
    task_queue = os.environ.get("TEMPORAL_TASK_QUEUE", "agents")
    if worker is not None:
        say("Waiting for the worker to start (it loads the model SDKs: a few seconds)...")
        if not await stack.wait_for_worker(client, task_queue, worker):
            say("  the worker is not polling yet; starting the run anyway (see .temporal/worker.log)")
    handle = await client.start_workflow(
        workflow_type,
        {"prompt": prompt, "customer_id": "C123"},
        id=workflow_id,
        task_queue=task_queue,
    )
    link = f"{ui}/namespaces/{client.namespace}/workflows/{workflow_id}"
    say(f"\nStarted {workflow_type} {workflow_id}\n  prompt: {prompt}\n  watch it: {link}\n")
    watch = _DemoWatch(address, handle, link, auto_approve)
    result = await watch.until_done(follow_events(client, workflow_id))
    say("Result:\n" + json.dumps(result, indent=2))
    await _say_where_to_look(handle, link, workflow, result)
    return result


class _DemoWatch:
    """Follows one demo run's progress stream (no polling) and approves its requests when the user asks."""

    def __init__(self, address: str, handle: WorkflowHandle[Any, Any], link: str, auto_approve: bool) -> None:
        self._address = address
        self._handle = handle
        self._link = link
        self._auto_approve = auto_approve
        self._renderer = Renderer(handle.id, sys.stdout)
        self._enter_pressed = threading.Event()
        self._latest = ""
        """What Enter approves: the request announced last."""

    async def until_done(self, events: AsyncIterator[dict[str, Any]]) -> dict[str, Any]:
        """Show the run's events until it ends and its stream is read; its result."""

        async def follow() -> None:
            async for event in events:
                await self._on_event(event)

        follower = asyncio.ensure_future(follow())
        result_task = asyncio.ensure_future(self._handle.result())
        while not (result_task.done() and follower.done()):
            if self._enter_pressed.is_set():
                self._enter_pressed.clear()
                await self._handle.signal(
                    "approve",
                    {"approver": "you", "comment": "approved at the demo prompt", "request_id": self._latest},
                )
            await asyncio.wait({result_task, follower}, timeout=0.5)
            if result_task.done() and not follower.done():
                await asyncio.wait({follower}, timeout=10)  # the last events, then on
                break
        follower.cancel()
        result: dict[str, Any] = result_task.result()
        return result

    async def _on_event(self, event: dict[str, Any]) -> None:
        """Stages, streamed text, tools, and approvals with the ways to answer them."""
        if event["type"] == "stage":
            say(f"[{event['stage']}] waiting for {event.get('waiting_for') or '...'}")
            return
        if event["type"] != "approval_requested":
            self._renderer.show(event)
            return
        request_id, workflow_id = event["request_id"], self._handle.id
        say(f"Waiting for approval ({request_id}): {event['summary']}")
        status = await self._handle.query("status")
        pending = [p for p in status["pending_approvals"] if p["request_id"] == request_id]
        if pending and (pending[0].get("kind") == "plan" or "plan" in pending[0]["proposal"]):
            say("  proposed plan and specialist findings:\n" + _indent(json.dumps(pending[0]["proposal"], indent=2)))
        data = json.dumps({"approver": "you", "request_id": request_id})
        say(f"  in the UI: {self._link} -> More Actions -> Send a Signal -> approve, data {data}")
        say(f"  or run:    {cli_name()} workflow signal --workflow-id {workflow_id} --name approve --input '{data}'")
        say("  (a signal's approver is taken as typed; the gateway's links and API authenticate approvers)")
        self._latest = request_id
        if self._auto_approve:
            approve_with_cli(self._address, workflow_id, "demo", request_id)
            say("  --auto-approve: approved as 'demo' with the temporal CLI.")
        else:
            say("  or press Enter here to approve as 'you'.")
            threading.Thread(target=_wait_for_enter, args=(self._enter_pressed,), daemon=True).start()


async def _say_where_to_look(
    handle: WorkflowHandle[Any, Any], link: str, workflow: str, result: dict[str, Any]
) -> None:
    """Where the run can be seen next: its stages, the UI, visibility, Langfuse and its archive."""
    if workflow == "hybrid":
        notification = (result.get("output") or {}).get("notification") or {}
        say(f"\nStages completed (from the event history): {', '.join(await stages_done(handle))}")
        say(
            f"Notification ({notification.get('channel', 'none')}): {notification.get('destination') or notification.get('error')}"
        )
    say(f"\nSee every step in the Temporal UI: {link}")
    say(
        f'Find this customer\'s runs: {cli_name()} workflow list --query \'CustomerId="C123" AND AgentStatus="{result["status"]}"\''
    )
    if Settings.from_env().langfuse is not None:
        say(f"Its LLM calls in Langfuse: trace {result['trace_id']} (session {handle.id}, user C123)")
    else:
        say(
            f"Trace id {result['trace_id']}; set LANGFUSE_PUBLIC_KEY/LANGFUSE_SECRET_KEY/LANGFUSE_BASE_URL to see it in Langfuse."
        )
    say(f"Its archive (output, conversation, plan, answer): .venv/bin/python -m archives show {handle.id}")


def _wait_for_enter(pressed: threading.Event) -> None:
    sys.stdin.readline()
    pressed.set()


STAGE_NAMES = {1: "plan", 2: "specialists", 3: "approval", 4: "execute", 5: "notify"}


async def stages_done(handle: WorkflowHandle[Any, Any]) -> list[str]:
    """The hybrid stages in the order their activities and approval timers appear in the history."""
    seen: list[int] = []
    async for event in handle.fetch_history_events():
        if not (
            event.HasField("activity_task_scheduled_event_attributes")
            or event.HasField("timer_started_event_attributes")
        ):
            continue
        summary = json.loads(event.user_metadata.summary.data) if event.user_metadata.HasField("summary") else ""
        if summary.startswith("stage "):
            stage = int(summary.split(":")[0].removeprefix("stage "))
        elif summary.startswith("approval") and 4 not in seen:
            stage = 3  # the plan's approval; later approvals are write tools inside stage 4
        else:
            continue
        if stage not in seen:
            seen.append(stage)
    return [f"stage {n}: {STAGE_NAMES.get(n, '?')}" for n in seen]


def _indent(text: str) -> str:
    return "\n".join("    " + line for line in text.splitlines())


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns 0 when the agent completed."""
    args = parse_args(argv)
    address, ui, server = start_cluster()
    fake = start_model_server()
    worker = start_worker(address, fake)
    try:
        result = asyncio.run(run_agent(address, ui, args.prompt, args.auto_approve, args.workflow, worker))
    finally:
        worker.terminate()
        worker.wait(30)
        if fake is not None:
            fake.stop()
        shutdown_tracing()  # the starter's spans too; os._exit at the end skips atexit hooks
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
