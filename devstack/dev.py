"""`./scripts/dev` (`python -m devstack`): your own agents on your machine, offline, reloaded as you edit them.

    ./scripts/dev [--agents FILE] [--tools MODULES] [--script FILE] [--port 7233] [--ui-port 8233]
                  [--state-dir DIR] [--live] [--debug]

Until Ctrl-C it keeps running: the Temporal dev server with its UI (or the cluster TEMPORAL_ADDRESS names),
the scripted model (fakes of the Anthropic and OpenAI APIs on 127.0.0.1, answering as devstack/dev_model.py
says, from your --script when you give one), and `worker.py` pointed at them with your AGENTS_FILE and
TOOL_MODULES. The worker restarts when the agents file (or a schema or MCP server script it names) or a tool
module changes; the model rereads the script when it changes. No API key and no network are needed.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NoReturn

from config.cli import DEBUG_HELP, run_command
from devstack import stack
from devstack.dev_model import AgentCatalog, DevModel
from devstack.dev_server import DevServer
from devstack.fake_anthropic import FakeAnthropic
from devstack.fake_openai import FakeOpenAI
from devstack.script import Script, ScriptInvalid, load_script
from devstack.stack import cli_name, say, shown
from devstack.watch import Watch, agents_file_sources, module_files
from tools.agents_file import read_agents_file

POLL_SECONDS = 0.5
"""How often the loop looks at the files and the worker."""
STOP_SECONDS = 15
"""How long a stopping worker may take before it is killed (it lets in-flight activities finish first)."""
FAKE_KEY = "offline-dev-no-key"
FIRST_PROMPT = "Hello! What can you do?"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="./scripts/dev", description="Your own agents, offline, reloaded as you edit them.", epilog=DEBUG_HELP
    )
    parser.add_argument("--agents", default=os.environ.get("AGENTS_FILE"), help="agents file (default: AGENTS_FILE)")
    parser.add_argument(
        "--tools", default=os.environ.get("TOOL_MODULES"), help="comma-separated tool modules (default: TOOL_MODULES)"
    )
    parser.add_argument("--script", help="the scripted model's replies (TOML or JSON; see docs/dev-loop.md)")
    parser.add_argument("--port", type=int, default=7233, help="the dev server's port (default 7233)")
    parser.add_argument("--ui-port", type=int, default=8233, help="its UI's port (default 8233; 0: no UI)")
    parser.add_argument("--state-dir", type=Path, default=stack.STATE, help="SQLite file, logs, blobs, notes")
    parser.add_argument("--live", action="store_true", help="no scripted model: the worker uses your API keys")
    args = parser.parse_args(argv)
    args.agents = Path(args.agents).absolute() if args.agents else None
    args.script = Path(args.script).absolute() if args.script else None
    args.modules = [m.strip() for m in (args.tools or "").split(",") if m.strip()]
    return args


class DevLoop:
    """The pieces, started once, and the worker, restarted whenever its sources change."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.state: Path = args.state_dir.absolute()
        self.log_path = self.state / "dev-worker.log"
        self.server: DevServer | None = None
        self.fakes: tuple[FakeAnthropic, FakeOpenAI] | None = None
        self.worker: subprocess.Popen[bytes] | None = None
        self.log_offset = 0
        self.ready = self.reported = False
        self.model: DevModel | None = None
        self.watch = Watch([])
        self.address = self.ui = ""

    # -- the pieces -----------------------------------------------------------------------------
    def start(self) -> None:
        """Cluster, scripted model, worker; then what runs where."""
        ui_port = self.args.ui_port or None
        self.address, self.ui, self.server = stack.start_cluster(
            port=self.args.port, ui_port=ui_port, db_file=self.state / "dev.db"
        )
        if not self.args.live:
            self.fakes = (FakeAnthropic().start(), FakeOpenAI().start())
        self.reload_model()
        self.start_worker()
        self.banner()

    def stop(self) -> None:
        """Everything this loop started, worker first (it may still be finishing a model call)."""
        self.stop_worker()
        for fake in self.fakes or ():
            fake.stop()
        if self.server is not None:
            self.server.stop()
            say("Dev server stopped.")

    def reload_model(self) -> None:
        """Point the scripted model at the current agents file and script; a broken script keeps the last good
        model (or, at start, none: every agent calls its tools once)."""
        if self.fakes is None:
            return
        catalog = AgentCatalog.load(str(self.args.agents) if self.args.agents else None)
        script = self.read_script(catalog) if self.args.script else Script()
        if script is None and self.model is not None:
            return
        self.model = DevModel(catalog, script, observe=lambda line: say(f"  model: {line}"))
        anthropic, openai = self.fakes
        anthropic.responder, openai.responder = self.model.anthropic(), self.model.openai()

    def read_script(self, catalog: AgentCatalog) -> Script | None:
        """The --script file, checked against the agents it may name; None (and its problems said) if broken."""
        assert self.args.script is not None
        try:
            script = load_script(self.args.script, catalog.names)
        except ScriptInvalid as exc:
            say("The script has problems; the model keeps its previous script until they are fixed:")
            for problem in exc.problems:
                say(f"  {problem}")
            return None
        say(f"Script {shown(self.args.script)} loaded: {describe_script(script)}.")
        return script

    def worker_env(self) -> dict[str, str]:
        """The worker's environment: yours, the cluster, the fakes, your agents and tools, state in --state-dir."""
        env = dict(os.environ, TEMPORAL_ADDRESS=self.address)
        # Tool modules are found in the current folder and the agents file's, then where PYTHONPATH says.
        folders = [str(p) for p in self.module_folders()] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
        env["PYTHONPATH"] = os.pathsep.join(folders)
        # A stdio MCP server started as `python` must find this interpreter and its packages first.
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
        if self.args.agents:
            env["AGENTS_FILE"] = str(self.args.agents)
        env["TOOL_MODULES"] = ",".join(self.args.modules)
        for name, default in (("BLOB_STORE_DIR", "blobs"), ("NOTES_DB", "notes.db"), ("NOTIFY_OUTBOX", "outbox.jsonl")):
            env.setdefault(name, str(self.state / default))
        env.setdefault("WORKER_GRACEFUL_SHUTDOWN_SECONDS", "3")
        if self.fakes is not None:
            anthropic, openai = self.fakes
            env.pop("ANTHROPIC_AUTH_TOKEN", None)  # only the fake key: nothing may reach a real provider
            env.update(ANTHROPIC_BASE_URL=anthropic.url, ANTHROPIC_API_KEY=FAKE_KEY)
            env.update(OPENAI_BASE_URL=openai.url, OPENAI_API_KEY=FAKE_KEY, OPENAI_AGENTS_DISABLE_TRACING="1")
        return env

    # -- the worker -----------------------------------------------------------------------------
    def start_worker(self) -> None:
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.worker = stack.start_worker(self.worker_env(), self.log_path, cwd=Path.cwd())
        self.ready = self.reported = False
        self.watch = Watch(self.sources())
        say(f"Worker starting (pid {self.worker.pid}, log {shown(self.log_path)}) ...")

    def stop_worker(self) -> None:
        if self.worker is None or self.worker.poll() is not None:
            return
        self.worker.send_signal(signal.SIGTERM)
        try:
            self.worker.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self.worker.kill()
            self.worker.wait(10)

    def worker_output(self) -> str:
        """What the worker wrote to its log since it was started."""
        with open(self.log_path, "rb") as log:
            log.seek(self.log_offset)
            return log.read().decode(errors="replace")

    def check_worker(self) -> None:
        """Say when the worker polls, or why it stopped (its own one-line errors) and what to do."""
        assert self.worker is not None
        code = self.worker.poll()
        if code is None:
            if not self.ready and "worker polling" in self.worker_output():
                self.ready = True
                say(f"Worker ready (pid {self.worker.pid}): polling task queue {task_queue()!r}.")
            return
        if not self.reported:
            self.reported = True
            say(f"The worker stopped (exit status {code}):")
            for line in self.worker_output().strip().splitlines()[-20:]:
                say(f"  {line}")
            say("Fix what it names; the worker restarts when a watched file changes.")

    # -- watching -------------------------------------------------------------------------------
    def module_folders(self) -> list[Path]:
        """Where the worker looks for tool modules before PYTHONPATH: here, and beside the agents file."""
        return [Path.cwd()] + ([self.args.agents.parent] if self.args.agents else [])

    def sources(self) -> list[Path]:
        """Every file whose change restarts the worker, and the script."""
        found: list[Path] = []
        if self.args.agents:
            found += agents_file_sources(self.args.agents)
        search = self.module_folders() + [Path(p) for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
        for module in self.args.modules:
            found += module_files(module, search)
        if self.args.script:
            found.append(self.args.script)
        return list(dict.fromkeys(found))

    def model_sources(self) -> set[Path]:
        """The files the scripted model reads: the script, and the agents file (instructions, output schemas)."""
        found = set(agents_file_sources(self.args.agents)) if self.args.agents else set()
        return found | ({self.args.script} if self.args.script else set())

    def run(self) -> None:
        """Until Ctrl-C: reload the model on a script change, restart the worker on any other."""
        while True:
            self.check_worker()
            changed = self.watch.changed()
            if changed:
                say(f"Changed: {', '.join(shown(p) for p in changed)}")
                if set(changed) & self.model_sources():
                    self.reload_model()
                if set(changed) != {self.args.script}:  # the script is the model's alone: no restart
                    say("Restarting the worker ...")
                    self.stop_worker()
                    self.start_worker()
            time.sleep(POLL_SECONDS)

    # -- telling the person -----------------------------------------------------------------------
    def banner(self) -> None:
        agent = first_agent(self.args.agents)
        payload = json.dumps({"agent": agent, "prompt": FIRST_PROMPT})
        say("")
        say("The dev loop is running (Ctrl-C stops everything it started):")
        if self.ui:
            say(f"  Temporal UI       {self.ui}")
        say(f"  Temporal address  {self.address} (task queue {task_queue()!r})")
        if self.fakes is not None:
            anthropic, openai = self.fakes
            how = (
                f"script {shown(self.args.script)}"
                if self.args.script
                else "no script: each agent calls its tools once"
            )
            say(f"  Scripted model    {anthropic.url} (Anthropic), {openai.url} (OpenAI); {how}")
        else:
            say("  Model             your providers, with your API keys (--live)")
        say(f"  Agents file       {shown(self.args.agents) if self.args.agents else '(none: built-in agents only)'}")
        say(f"  Tool modules      {', '.join(self.args.modules) or '(none)'}")
        say(f"  Watching          {', '.join(shown(p) for p in self.sources()) or '(nothing)'}")
        say("")
        say(f"Start a run of {agent!r} (`workflow execute` instead of `start` waits and prints the result):")
        say(
            f"  {cli_name()} workflow start --address {self.address} --task-queue {task_queue()} "
            f"--type AgentLoopWorkflow --input '{payload}'"
        )
        say("")


def task_queue() -> str:
    return os.environ.get("TEMPORAL_TASK_QUEUE") or "agents"


def first_agent(agents_file: Path | None) -> str:
    """The agents file's first agent, or the built-in `assistant`."""
    agents = list(read_agents_file(agents_file).agents) if agents_file else []
    return agents[0] if agents else "assistant"


def describe_script(script: Script) -> str:
    parts = [f"agents {', '.join(script.agents)}"] if script.agents else []
    parts += [f"{len(script.prompts)} prompt pattern(s)"] if script.prompts else []
    return "; ".join(parts) or "empty"


def _interrupt(*_: Any) -> NoReturn:
    raise KeyboardInterrupt


def _main(argv: list[str]) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)  # `kill PID` stops the loop as Ctrl-C does
    loop = DevLoop(args)
    try:
        loop.start()
        loop.run()
    except KeyboardInterrupt:
        say("\nStopping ...")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):  # a second signal must not cut the clean-up short
            signal.signal(sig, signal.SIG_IGN)
        loop.stop()
    return 0


def main(argv: list[str] | None = None) -> int:
    """The dev loop; 0 after Ctrl-C, 2 and one line on a configuration error."""
    return run_command("dev", _main, argv)


if __name__ == "__main__":
    sys.exit(main())
