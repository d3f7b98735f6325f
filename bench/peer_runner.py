"""One peer's side of bench/peers.py, run with bench/.venv-peers/bin/python (never the product's venv).

    bench/.venv-peers/bin/python bench/peer_runner.py openai-agents --address 127.0.0.1:7233

Starts the peer's worker on the given dev server, then reads one JSON command per line on stdin
(`{"mode": "plain" | "temporal", "prompt": ..., "steps": N}`) and answers each with one JSON line on
stdout: wall time, and for Temporal runs the history's size, events, workflow tasks and activities.

With `--serve` (bench/scale.py) it only runs the worker: it prints `{"ready": ..., "task_queue": ..., "pid": ...}`
and serves until its stdin closes, while the bench starts the workflows from its own process, so this process's
CPU and memory are the peer worker's alone.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import sys
import time
import uuid
from pathlib import Path

MODULES = {"openai-agents": "peer_openai_agents", "pydantic-ai": "peer_pydantic_ai"}


def history_stats(events) -> dict[str, int]:
    """Bytes as bench/history.py counts them (each event serialized plus its tag and length), and counts."""
    from temporalio.api.enums.v1 import EventType as E

    marker = E.EVENT_TYPE_MARKER_RECORDED
    return {
        "history_bytes": sum(e.ByteSize() + 3 for e in events),
        "events": len(events),
        "workflow_tasks": sum(e.event_type == E.EVENT_TYPE_WORKFLOW_TASK_COMPLETED for e in events),
        "activities": sum(e.event_type == E.EVENT_TYPE_ACTIVITY_TASK_COMPLETED for e in events),
        "local_activities": sum(e.event_type == marker for e in events),
    }


async def serve(framework: str, address: str, worker_only: bool = False) -> None:
    peer = importlib.import_module(MODULES[framework])
    client = await peer.connect(address)
    task_queue = f"peer-{framework}-{uuid.uuid4().hex[:6]}"
    async with peer.worker(client, task_queue):
        ready = {"ready": framework, "task_queue": task_queue, "workflow": peer.WORKFLOW.__name__, "pid": os.getpid()}
        print(json.dumps(ready), flush=True)
        loop = asyncio.get_running_loop()
        if worker_only:
            await loop.run_in_executor(None, sys.stdin.read)
            return
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            command = json.loads(line)
            max_turns = command["steps"] + 5
            cpu, t0 = time.process_time(), time.perf_counter()
            reply: dict = {}
            if command["mode"] == "plain":
                reply["output"] = await peer.plain_run(command["prompt"], max_turns)
            else:
                handle = await client.start_workflow(
                    peer.WORKFLOW.run,
                    args=[command["prompt"], max_turns],
                    id=f"peer-{uuid.uuid4().hex[:12]}",
                    task_queue=task_queue,
                )
                reply["output"] = await handle.result()
            reply["wall_s"] = time.perf_counter() - t0
            reply["cpu_s"] = time.process_time() - cpu
            if command["mode"] == "temporal":
                reply.update(history_stats([e async for e in handle.fetch_history_events()]))
            print(json.dumps(reply), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("framework", choices=sorted(MODULES))
    parser.add_argument("--address", required=True)
    parser.add_argument("--serve", action="store_true", help="only run the worker until stdin closes")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    code = 0
    try:
        asyncio.run(serve(args.framework, args.address, args.serve))
    except Exception as exc:  # reported to the driver, which says which peer failed and why
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}), flush=True)
        code = 1
    sys.stdout.flush()
    os._exit(code)  # sdk-python#300


if __name__ == "__main__":
    main()
