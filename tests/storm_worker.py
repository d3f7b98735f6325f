"""`python worker.py` with an activity journal, for the storm test (tests/test_storm.py).

The worker is the product's own (`worker.main`); the one thing added is an activity interceptor that appends a
line per activity execution (regular and local) to `STORM_JOURNAL`, so the test can tell whether an activity
that Temporal had recorded as completed was ever executed again. Each line is written with one `write` on an
`O_APPEND` descriptor before the activity body runs, so a SIGKILL loses no line that matters.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
    WorkerConfig,
)

import worker
from service.plugin import AgentServicePlugin

_JOURNAL = os.open(os.environ["STORM_JOURNAL"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


def _note(kind: str) -> None:
    info = activity.info()
    line = {
        "kind": kind,
        "workflow_id": info.workflow_id,
        "run_id": info.workflow_run_id,
        "activity_id": info.activity_id,
        "type": info.activity_type,
        "attempt": info.attempt,
        "local": info.is_local,
        "at": time.time(),
        "pid": os.getpid(),
    }
    os.write(_JOURNAL, (json.dumps(line) + "\n").encode())


class _Journaled(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        _note("start")
        result = await super().execute_activity(input)
        _note("done")
        return result


class _JournalInterceptor(Interceptor):
    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Journaled(next)


class JournaledPlugin(AgentServicePlugin):
    """The product's plugin, plus the journal on every activity the worker runs."""

    def configure_worker(self, config: WorkerConfig) -> WorkerConfig:
        config = super().configure_worker(config)
        config["interceptors"] = [*config.get("interceptors", []), _JournalInterceptor()]
        return config


if __name__ == "__main__":
    worker.AgentServicePlugin = JournaledPlugin  # type: ignore[misc]  # build_worker looks the name up at call time
    code = worker.main()
    os._exit(code)
