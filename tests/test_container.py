"""The image's runtime without Docker: the Dockerfile's USER, WORKDIR, ENV and CMD, the wheel installed alone in
a root-owned venv (as the image's /opt/venv), the worker started as that uid (`setpriv`), real runs on the dev server.

What the image's VOLUME holds is a fresh directory owned by the image's user (the Dockerfile's `RUN` chowns
it, and a named volume starts as a copy of it); every ENV path under the VOLUME or WORKDIR is mapped into
the test's directories. Needs root (for `setpriv` and a root-owned copy); skipped otherwise.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest

from devstack.dev_server import free_port
from devstack.fake_anthropic import Reply
from tests.conftest import workflow_id
from tests.helpers import WorkerProcess, eventually, pending_approvals
from tests.test_deploy import dockerfile_instructions

pytestmark = [
    pytest.mark.skipif(
        os.geteuid() != 0 or shutil.which("setpriv") is None, reason="needs root and setpriv to drop to the image's uid"
    ),
    pytest.mark.xdist_group("wheel"),  # with tests/test_package.py: one worker builds the wheel once (in build/)
]


@dataclass(frozen=True)
class Image:
    """What the run stage of the Dockerfile says about the process it starts."""

    uid: int
    workdir: str
    env: dict[str, str]
    volumes: list[str]
    chowned: list[str]
    cmd: str


def read_image() -> Image:
    """USER, WORKDIR, ENV, VOLUME of the Dockerfile's last stage, and what its RUN lines chown."""
    steps = dockerfile_instructions()
    last = max(i for i, (op, _) in enumerate(steps) if op == "FROM")
    env: dict[str, str] = {"PATH": "/usr/local/bin:/usr/bin:/bin"}
    user, workdir, volumes, chowned, cmd = "0", "/", [], [], ""
    for op, args in steps[last:]:
        if op == "ENV":
            for name, value in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)=(\S*)", args):
                env[name] = re.sub(r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?", lambda m: env.get(m.group(1), ""), value)
        elif op == "CMD":
            cmd = args
        elif op == "USER":
            user = args.split(":")[0]
        elif op == "WORKDIR":
            workdir = args
        elif op == "VOLUME":
            volumes += re.findall(r'"([^"]+)"', args) or args.split()
        elif op == "RUN":
            chowned += re.findall(r"chown (?:-R )?\S+ (\S+)", args)
    assert user.isdigit(), f"USER must be numeric, got {user!r}"
    return Image(int(user), workdir, env, volumes, chowned, cmd)


@pytest.fixture(scope="module")
def image() -> Image:
    return read_image()


@pytest.fixture(scope="module")
def root_dir():
    """A directory the image's user can traverse (pytest's own tmp directories are 0700 root)."""
    path = Path(tempfile.mkdtemp(prefix="container-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def code_copy(installed_wheel) -> Path:
    """The image's /opt/venv: the wheel installed alone (tests/package_support.py), root-owned like the image's."""
    assert installed_wheel.stat().st_uid == 0
    return installed_wheel


@pytest.fixture
def volume(root_dir, image) -> Path:
    """The VOLUME as a fresh named volume would be: a directory owned by the image's user."""
    assert image.volumes, "the image declares no VOLUME for what the worker writes"
    assert image.volumes[0] in image.chowned, f"the Dockerfile never chowns {image.volumes[0]} to its user"
    data = Path(tempfile.mkdtemp(prefix="volume-", dir=root_dir))
    os.chown(data, image.uid, image.uid)
    return data


def mapped(image: Image, data: Path, value: str) -> str:
    """A path of the image (under its VOLUME) as it is here."""
    prefix = image.volumes[0]
    if value == prefix or value.startswith(prefix + "/"):
        return str(data) + value[len(prefix) :]
    return value


def container_env(image: Image, venv: Path, data: Path, **extra: str) -> dict[str, str]:
    """The Dockerfile's ENV with its VOLUME mapped here, the installed venv on PATH, and the test's endpoints."""
    env = {name: mapped(image, data, value) for name, value in image.env.items()}
    env["PATH"] = env["PATH"].replace("/opt/venv/bin", str(venv / "bin"))
    return {**env, **extra}


def as_image_user(image: Image) -> list[str]:
    return ["setpriv", f"--reuid={image.uid}", f"--regid={image.uid}", "--clear-groups"]


def start_container_worker(image: Image, venv: Path, data: Path, env: dict[str, str], log: Path) -> WorkerProcess:
    """The image's CMD (the wheel's command, found on the image's PATH) as its uid, in its WORKDIR, with only `env`."""
    (command,) = json.loads(image.cmd)
    assert "/" not in command and (venv / "bin" / command).exists(), f"CMD {command!r} is not a command of the wheel"
    return WorkerProcess(
        env, log, command=[*as_image_user(image), str(venv / "bin" / command)], cwd=Path(mapped(image, data, image.workdir)),
        inherit_env=False,
    ).start(timeout=60)  # fmt: skip


@pytest.fixture
def container(image, code_copy, volume, dev_server, fake_llm, settings, tmp_path):
    """Factory of container-like workers on this test's task queue, stopped at teardown."""
    started: list[WorkerProcess] = []

    def spawn() -> WorkerProcess:
        env = container_env(
            image,
            code_copy,
            volume,
            TEMPORAL_ADDRESS=dev_server.address,
            TEMPORAL_TASK_QUEUE=settings.task_queue,
            ANTHROPIC_BASE_URL=fake_llm.url,
            ANTHROPIC_API_KEY="test-key-not-real",
            OPENAI_BASE_URL="http://127.0.0.1:9/v1",
            OPENAI_AGENTS_DISABLE_TRACING="1",
            # Each container has its own network namespace; on one host, each gets its own port instead of 8081.
            WORKER_HEALTH_HOST="127.0.0.1",
            WORKER_HEALTH_PORT=str(free_port()),
        )
        proc = start_container_worker(image, code_copy, volume, env, tmp_path / f"container-{len(started)}.log")
        started.append(proc)
        return proc

    yield spawn
    for proc in started:
        proc.stop()


def test_the_image_reads_as_expected_and_runs_the_installed_wheel(image, code_copy, volume):
    assert image.uid != 0 and image.workdir == image.volumes[0]
    env = container_env(image, code_copy, volume)
    probe = subprocess.run(
        [*as_image_user(image), str(code_copy / "bin/python"), "-c"]
        + ["import payloads, os; print(payloads.__file__); open(os.path.dirname(payloads.__file__) + '/x', 'w')"],
        cwd=mapped(image, volume, image.workdir),
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # The worker imports the installed wheel, not the checkout, and cannot write into its own code. (The path
    # is absolute: this venv's interpreter links into root's 0700 home, which Python cannot resolve from PATH.)
    assert probe.stdout.startswith(str(code_copy)), probe.stdout + probe.stderr
    assert "PermissionError" in probe.stderr


async def test_pattern_b_run_with_offloaded_conversation_and_approved_note(
    client, fake_llm, settings, container, volume, image
):
    fake_llm.push(
        Reply(tool_calls=[("calculator", {"expression": "6000 * 0.2"})]),
        Reply(tool_calls=[("write_note", {"title": "Answer", "body": "1200"})]),
        Reply(text="Saved: 6000 * 0.2 = 1200."),
    )
    container()
    handle = await client.start_workflow(
        "AgentLoopWorkflow",
        {"prompt": "What is 6000 * 0.2? Then save a note with the answer."},
        id=workflow_id("container"),
        task_queue=settings.task_queue,
    )
    await pending_approvals(handle, timeout=60)
    await handle.signal("approve", {"approver": "alice"})
    result = await handle.result()

    assert result["status"] == "completed" and result["output"] == "Saved: 6000 * 0.2 = 1200."
    fake_llm.assert_script_consumed()
    # The conversation went to the image's blob store, written by the image's user.
    blobs = [p for p in (volume / "blobs" / "blobs").rglob("*") if p.is_file()]
    assert blobs and all(p.stat().st_uid == image.uid for p in blobs)
    assert list((volume / "blobs" / "objects" / "archives").rglob("*.json"))
    notes = volume / "notes.db"
    assert notes.stat().st_uid == image.uid and stat.S_IMODE(notes.stat().st_mode) == 0o600
    import sqlite3

    with sqlite3.connect(notes) as db:
        assert db.execute("select title, body from notes").fetchall() == [("Answer", "1200")]


async def test_a_second_container_completes_the_step_the_first_began(client, fake_llm, settings, container, volume):
    fake_llm.push(
        Reply(tool_calls=[("calculator", {"expression": "6000 * 0.2"})]),
        Reply(text="never sent: the first worker dies during this call", delay=60),
        Reply(text="6000 * 0.2 = 1200."),
    )
    first = container()
    handle = await client.start_workflow(
        "AgentLoopWorkflow",
        {"prompt": "What is 6000 * 0.2?"},
        id=workflow_id("handover"),
        task_queue=settings.task_queue,
    )
    await eventually(lambda: len(fake_llm.requests) == 2, timeout=60)  # step 3 in flight on the first
    first.kill()
    second = container()
    result = await handle.result()

    assert result["status"] == "completed" and result["output"] == "6000 * 0.2 = 1200."
    # The retried step read the conversation the first worker stored: the same request, sent again whole.
    assert len(fake_llm.requests) == 3 and fake_llm.requests[1].body == fake_llm.requests[2].body
    history = await handle.fetch_history()
    identities = {
        e.activity_task_started_event_attributes.identity
        for e in history.events
        if e.HasField("activity_task_started_event_attributes")
    }
    assert str(second.proc.pid) in " ".join(identities)
