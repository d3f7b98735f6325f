"""Followers: the SSE endpoint served by uvicorn (Last-Event-ID resume), and `python -m progress follow`."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx

from devstack.fake_anthropic import Reply
from progress.reader import follow_events
from tests.conftest import workflow_id
from tests.helpers import pending_approvals
from tests.sse_support import serving_events

ROOT = Path(__file__).resolve().parents[1]


def parse_sse(body: str) -> tuple[list[dict], list[str]]:
    """(events as {id, event, data}, comment lines)."""
    events, comments = [], []
    for block in body.split("\n\n"):
        fields: dict = {}
        for line in block.splitlines():
            if line.startswith(":"):
                comments.append(line)
            elif ": " in line:
                key, value = line.split(": ", 1)
                fields[key] = value
        if "id" in fields:
            events.append(fields)
    return events, comments


async def test_sse_endpoint_streams_and_resumes_with_last_event_id(client, worker, fake_llm):
    fake_llm.push(Reply(text="Streaming over SSE, word by word, to whoever follows.", chunk_delay=0.1))
    handle = await client.start_workflow(
        "AgentLoopWorkflow", {"prompt": "hi"}, id=workflow_id("sse"), task_queue=worker.task_queue
    )

    async with serving_events(client, heartbeat_seconds=0.2) as base:
        url = f"{base}/v1/runs/{handle.id}/events"
        async with httpx.AsyncClient(timeout=60) as http:
            live = await http.get(url)  # from the start while the run goes; the response ends after run_finished
            assert live.status_code == 200 and live.headers["content-type"].startswith("text/event-stream")
            events, comments = parse_sse(live.text)
            assert [int(e["id"]) for e in events] == list(range(len(events)))
            datas = [json.loads(e["data"]) for e in events]
            assert [d["offset"] for d in datas] == [int(e["id"]) for e in events]
            assert [e["event"] for e in events] == [d["type"] for d in datas]
            assert datas[-1]["type"] == "run_finished"
            assert "".join(d["text"] for d in datas if d["type"] == "llm_delta") == (await handle.result())["output"]
            assert comments  # the opening comment, and heartbeats while nothing came

            middle = int(events[len(events) // 2]["id"])
            resumed = await http.get(url, headers={"Last-Event-ID": str(middle)})
            later, _ = parse_sse(resumed.text)
            assert [e["id"] for e in later] == [e["id"] for e in events if int(e["id"]) > middle]
            assert [e["data"] for e in later] == [e["data"] for e in events if int(e["id"]) > middle]

            assert (await http.get(f"{base}/v1/runs/no-such-run/events")).status_code == 404
            bad = await http.get(url, headers={"Last-Event-ID": "x"})
            assert bad.status_code == 400


async def test_follow_command_renders_a_run_to_completion(client, worker, fake_llm, dev_server):
    fake_llm.push(
        Reply(tool_calls=[("write_note", {"title": "Answer", "body": "1200"})]),
        Reply(text="Saved the note with 1200 in it.", chunk_delay=0.05),
    )
    handle = await client.start_workflow(
        "AgentLoopWorkflow",
        {"prompt": "save 1200", "approval": {"approvers": ["alice"]}},
        id=workflow_id("follow"),
        task_queue=worker.task_queue,
    )
    env = {**os.environ, "TEMPORAL_ADDRESS": dev_server.address}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "progress",
        "follow",
        handle.id,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        (request,) = await pending_approvals(handle, timeout=60)
        await handle.signal("approve", {"approver": "alice", "request_id": request["request_id"]})
        out, err = await asyncio.wait_for(proc.communicate(), timeout=120)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = out.decode()
    assert proc.returncode == 0, err.decode()
    assert "-> step 1: call_llm (assistant)" in text
    assert f"?? waiting for approval {request['request_id']}" in text
    assert f"--workflow-id {handle.id} --name approve" in text and f'"request_id": "{request["request_id"]}"' in text
    assert f"{request['request_id']} approved by alice" in text
    assert "-> tool write_note" in text and "write_note ok:" in text
    assert "Saved the note with 1200 in it." in text
    assert text.rstrip().endswith("== run finished: completed")
    # A run that has already completed: all its events, then the command ends.
    # (an asyncio subprocess: the in-process worker answering its queries runs on this event loop)
    done = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "progress",
        "follow",
        handle.id,
        "--json",
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(done.communicate(), timeout=120)
    assert done.returncode == 0, err.decode()
    lines = [json.loads(line) for line in out.decode().splitlines()]
    assert lines == [e async for e in follow_events(client, handle.id)]
