"""Worker Deployment versioning on a real dev server: a run waiting for approval on version 1 finishes there while
version 2, whose code cannot replay it (a changed order of activities), becomes current; the replay gate flags
the run before the switch (docs/deployments.md).

The workflow type is test-only (tests/versioned_workflows.py), so the test runs its own dev server: the session's
replay check knows only the product's workflows. It replays its runs itself, each on its own version's code.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid

import pytest
from temporalio.client import Client, WorkflowHandle
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.worker import Replayer, Worker, WorkerDeploymentConfig

from config.settings import Settings
from devstack.dev_server import free_port, start_dev_server
from devstack.fake_anthropic import Reply
from releases.cli import run_gate
from releases.gate import cluster_candidates
from releases.rollout import Rollout
from tests.helpers import ROOT, eventually, pending_approvals
from tests.versioned_workflows import ACTIVITIES, WORKFLOW_TYPE, ApprovalV1, ApprovalV2
from workflows.patches import INTRODUCED_IN, PATCH_SETS


@pytest.fixture
async def own_server(tmp_path, monkeypatch):
    """A dev server of this test's own; the `temporal` CLI of the rollout reaches it through TEMPORAL_ADDRESS."""
    server = start_dev_server(port=free_port(), ui_port=None, db_file=str(tmp_path / "dev.db"))
    try:
        await server.wait_serving()
        monkeypatch.setenv("TEMPORAL_ADDRESS", server.address)
        yield server
    finally:
        server.stop()


def versioned_worker(client: Client, task_queue: str, deployment: str, build_id: str, workflow: type) -> Worker:
    """A worker of one build of `deployment`, serving one version of the test workflow."""
    version = WorkerDeploymentVersion(deployment_name=deployment, build_id=build_id)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[workflow],
        activities=ACTIVITIES,
        deployment_config=WorkerDeploymentConfig(version=version, use_worker_versioning=True),
    )


async def rollout(plan: Rollout, lines: list[str]) -> int:
    """The rollout command's steps, in a thread: the in-process workers must go on polling meanwhile."""
    return await asyncio.to_thread(plan.run, lines.append)


async def waits_for_approval(handle: WorkflowHandle) -> bool:
    """Whether the run's first activities have completed (it now waits for its signal)."""
    history = await handle.fetch_history()
    return any(e.HasField("activity_task_completed_event_attributes") for e in history.events)


async def build_of(handle: WorkflowHandle) -> str:
    """The build id the run is pinned to."""
    return (await handle.describe()).raw_description.workflow_execution_info.versioning_info.deployment_version.build_id


async def test_a_waiting_run_finishes_on_version_1_after_version_2_becomes_current(own_server):
    client = await Client.connect(own_server.address)
    task_queue, deployment = f"versioned-{uuid.uuid4().hex[:6]}", f"agents-{uuid.uuid4().hex[:6]}"
    lines: list[str] = []
    async with versioned_worker(client, task_queue, deployment, "v1", ApprovalV1):
        assert await rollout(Rollout(deployment, "v1", wait_for_pollers_seconds=20), lines) == 0, lines
        waiting = await client.start_workflow(
            WORKFLOW_TYPE, id=f"waiting-{uuid.uuid4().hex[:6]}", task_queue=task_queue
        )
        await eventually(lambda: waits_for_approval(waiting))

        async with versioned_worker(client, task_queue, deployment, "v2", ApprovalV2):
            # The gate, run from version 2's code before the switch, names the waiting run and why it would break.
            candidates = await cluster_candidates(client, closed_per_type=5, types=[WORKFLOW_TYPE])
            report: list[str] = []
            assert await run_gate(Replayer(workflows=[ApprovalV2]), candidates, say=report.append) == 1
            assert report[0].startswith("replay gate: 1 runs (1 open) against this checkout: 1 would break")
            [broken] = report[1:]
            assert waiting.id in broken and f"pinned to {deployment}.v1" in broken
            assert "ondeterminism" in broken and "plan" in broken and "check" in broken

            # Ramp, then make version 2 current: new runs start there, the waiting run stays on version 1.
            assert await rollout(Rollout(deployment, "v2", ramp=(50,), wait_for_pollers_seconds=20), lines) == 0
            commands = [line for line in lines if line.startswith("$ temporal")]
            assert [c.split()[4] for c in commands[-4:]] == [
                "describe-version",
                "set-ramping-version",
                "set-current-version",
                "describe",
            ]
            fresh = await client.start_workflow(
                WORKFLOW_TYPE, id=f"fresh-{uuid.uuid4().hex[:6]}", task_queue=task_queue
            )
            await eventually(lambda: waits_for_approval(fresh))
            for handle in (waiting, fresh):
                await handle.signal("approve", {"approver": "alice"})
            assert await waiting.result() == "v1:plan,act"
            assert await fresh.result() == "v2:check,plan,act"
            assert (await build_of(waiting), await build_of(fresh)) == ("v1", "v2")

    # Every run replays on the code of the version it ran on.
    for handle, version in ((waiting, ApprovalV1), (fresh, ApprovalV2)):
        await Replayer(workflows=[version]).replay_workflow(await handle.fetch_history())


async def test_a_product_run_is_pinned_to_its_build_and_the_patch_report_counts_it(
    client, dev_server, settings, fake_llm, monkeypatch
):
    """The product's worker with WORKER_DEPLOYMENT_NAME: a loop run waits pinned to its build, and
    `python -m releases patches` reports it by build id with its patch set."""
    from worker import build_worker

    deployment = f"agents-{uuid.uuid4().hex[:6]}"
    monkeypatch.setenv("WORKER_DEPLOYMENT_NAME", deployment)
    monkeypatch.setenv("WORKER_BUILD_ID", "b1")
    monkeypatch.setenv("TEMPORAL_ADDRESS", dev_server.address)
    versioned = Settings.from_env()
    fake_llm.push(Reply(tool_calls=[("write_note", {"title": "Answer", "body": "1200"})]), Reply(text="Saved."))
    async with build_worker(client, versioned):
        assert await rollout(Rollout(deployment, "b1", wait_for_pollers_seconds=20), []) == 0
        handle = await client.start_workflow(
            "AgentLoopWorkflow",
            {"prompt": "Save 1200 as a note.", "approval": {"approvers": ["alice"]}},
            id=f"pinned-{uuid.uuid4().hex[:6]}",
            task_queue=versioned.task_queue,
        )
        await pending_approvals(handle)
        info = (await handle.describe()).raw_description.workflow_execution_info.versioning_info
        assert info.behavior == VersioningBehavior.PINNED and info.deployment_version.build_id == "b1"

        done = await releases_command("patches", "--query", f'WorkflowId="{handle.id}"')
        assert done.returncode == 0, done.stderr
        assert f"build {deployment}.b1: 1 open runs, oldest patch-set-{len(PATCH_SETS)}" in done.stdout
        assert f"can go now ({len(INTRODUCED_IN)})" in done.stdout and "must stay (0)" in done.stdout

        # The gate, against the cluster, from this checkout: the waiting run replays.
        gate = await releases_command("gate", "--query", f'WorkflowId="{handle.id}"')
        assert gate.returncode == 0, gate.stdout + gate.stderr
        assert "replay gate: 1 runs (1 open) against this checkout: 0 would break" in gate.stdout

        await handle.signal("approve", {"approver": "alice", "request_id": "req-1"})
        assert (await handle.result())["status"] == "completed"


async def releases_command(*args: str) -> subprocess.CompletedProcess:
    """`python -m releases ARGS` against the cluster TEMPORAL_ADDRESS names, in a thread (the worker goes on)."""
    command = [sys.executable, "-m", "releases", *args]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return await asyncio.to_thread(subprocess.run, command, capture_output=True, text=True, env=env, timeout=120)
