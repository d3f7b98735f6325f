"""A newcomer following the README: a checkout, a main terminal (bash) and more terminals for long-lived commands.

The checkout is a temporary folder of symlinks to this one, so the files the README has the reader write land in
a fresh place while every command (`./scripts/dev`, `.venv/bin/...`) is the real one. Shell variables and
exports carry from block to block as they do in one terminal. Every process started here is stopped by its
process group (the group each terminal's bash leads), as closing the terminals would.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

from devstack.dev_server import temporal_cli
from tests.helpers import ROOT
from tests.readme_blocks import Block

# After each shell block, the variables it (or an earlier block) set are saved for the next one.
_SAVE_STATE = """
for __v in $(compgen -v); do
  case " $__README_BASE " in *" $__v "*) ;; *) [[ $__v == __* ]] || declare -p "$__v" ;; esac
done > "$__README_STATE"
"""
WAIT_SECONDS = 90.0
"""Longest wait for a process to be ready, a request to open or a command to finish (a cold worker takes ~10 s)."""


def make_checkout(root: Path, leave_out: set[str]) -> Path:
    """`root/checkout`: a symlink to each top-level entry of this checkout, except those the README creates."""
    assert (ROOT / ".venv" / "bin" / "python").exists(), "run ./scripts/setup first: the README uses .venv"
    checkout = root / "checkout"
    checkout.mkdir()
    for entry in ROOT.iterdir():
        if entry.name not in leave_out | {".git", "README.md"}:
            (checkout / entry.name).symlink_to(entry)
    return checkout


class Session:
    """The reader's terminals, in one checkout, with one environment."""

    def __init__(self, checkout: Path, env: dict[str, str], logs: Path) -> None:
        self.checkout, self.env, self.logs = checkout, env, logs
        self.state = logs / "shell-state.sh"
        self.state.write_text("")
        self.terminal = logs / "terminal.log"
        self.terminal.touch()
        self.groups: list[subprocess.Popen[bytes]] = []  # every bash started here: each leads a process group
        self.named: dict[str, tuple[subprocess.Popen[bytes], Path]] = {}
        base = subprocess.run(["bash", "-c", "compgen -v"], env=env, capture_output=True, text=True, check=True)
        self.env["__README_BASE"] = " ".join(base.stdout.split())
        self.env["__README_STATE"] = str(self.state)

    # -- terminals -----------------------------------------------------------------------------
    def bash(
        self,
        script: str,
        log: Path,
        stdin: int | None = subprocess.DEVNULL,
        env: dict[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        """`script` in a new bash (in the checkout) that leads its own process group, output appended to `log`."""
        body = f"set -euo pipefail\nsource {self.state}\n{script}"
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                ["bash", "-c", body],
                cwd=cwd or self.checkout,
                env={**self.env, **(env or {})},
                stdin=stdin,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.groups.append(proc)
        return proc

    def shell(self, block: Block) -> str:
        """Type the block's commands in the main terminal; what they printed (background jobs keep printing)."""
        offset = self.terminal.stat().st_size
        proc = self.bash(block.text + _SAVE_STATE, self.terminal)
        code = proc.wait(WAIT_SECONDS)
        output = self.output_since(offset)
        assert code == 0, f"{block.where}: exit status {code}:\n{output}"
        if ready := block.option("ready"):
            output = self.wait_for(ready, self.terminal, offset, block)
        for pattern in block.options.get("expect", []):
            assert re.search(pattern, output), f"{block.where}: output lacks {pattern!r}:\n{output}"
        return output

    def background(self, block: Block) -> None:
        """The block's command in a terminal of its own, until the README says to stop it."""
        name = block.option("name") or "?"
        log = self.logs / f"terminal-{name}-{block.line}.log"
        log.touch()
        self.named[name] = (self.bash(block.text, log), log)
        if ready := block.option("ready"):
            self.wait_for(ready, log, 0, block)

    def interrupt(self, name: str) -> None:
        """Ctrl-C in the named terminal: SIGINT to its foreground process group, then wait for it to end."""
        proc, log = self.named.pop(name)
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"Ctrl-C did not stop terminal {name!r}:\n{log.read_text()[-3000:]}") from None
        _wait_group_gone(proc.pid, 30)

    def close(self) -> None:
        """Close every terminal: SIGTERM to each process group still alive, SIGKILL to what lingers."""
        for proc in self.groups:
            _signal_group(proc.pid, signal.SIGTERM)
        for proc in self.groups:
            if not _wait_group_gone(proc.pid, 30):
                _signal_group(proc.pid, signal.SIGKILL)

    # -- watching ------------------------------------------------------------------------------
    def output_since(self, offset: int) -> str:
        with open(self.terminal, "rb") as log:
            log.seek(offset)
            return log.read().decode(errors="replace")

    def wait_for(self, pattern: str, log: Path, offset: int, block: Block) -> str:
        """Wait until `pattern` shows in `log` after `offset`; the text up to now."""
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            text = log.read_bytes()[offset:].decode(errors="replace")
            if re.search(pattern, text):
                return text
            assert time.monotonic() < deadline, f"{block.where}: {pattern!r} never showed:\n{text[-4000:]}"
            time.sleep(0.2)

    def temporal(self, *args: str) -> dict:
        """`temporal ... -o json` as the reader would type it (TEMPORAL_ADDRESS from the environment)."""
        done = subprocess.run(
            [temporal_cli(), *args, "-o", "json"], env=self.env, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, f"temporal {' '.join(args)}: {done.stderr}{done.stdout}"
        return json.loads(done.stdout)

    def wait_pending(self, workflow_id: str, block: Block) -> None:
        """Wait, as the reader does by querying the status, until the run shows a pending approval."""
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            try:
                status = self.temporal("workflow", "query", "--workflow-id", workflow_id, "--name", "status")
                if status["queryResult"][0]["pending_approvals"]:
                    return
            except AssertionError:  # the run's first workflow task may not have run yet
                status = {}
            assert time.monotonic() < deadline, f"{block.where}: {workflow_id} never waited for approval: {status}"
            time.sleep(0.3)

    def result(self, workflow_id: str) -> dict:
        """The run's result, as `temporal workflow result` shows it (waits for the run to close)."""
        shown = self.temporal("workflow", "result", "--workflow-id", workflow_id)
        assert shown["status"] == "COMPLETED", shown
        return shown["result"]

    def follow_link(self, workflow_id: str, offset: int, block: Block) -> None:
        """Open the approval link the inbox printed, as a browser does, and press Approve."""
        printed = rf"{workflow_id} req-1 for alice: (http://\S+/approve/\S+)"
        url = re.search(printed, self.wait_for(printed, self.terminal, offset, block))[1]  # type: ignore[index]
        # The receiver's own log line: it answered the workers' POST with a 2xx (a 5xx would have them retry).
        self.wait_for(printed + r'[\s\S]*"POST [^"]*" 2\d\d', self.terminal, offset, block)
        with urllib.request.urlopen(url, timeout=30) as page:
            assert b"Approve" in page.read(), f"{block.where}: the approval page has no Approve button"
        origin = "{0.scheme}://{0.netloc}".format(urllib.parse.urlsplit(url))
        form = urllib.request.Request(url, data=b"decision=approve&comment=", headers={"Origin": origin})
        with urllib.request.urlopen(form, timeout=30) as answer:
            assert b"Approved" in answer.read(), f"{block.where}: pressing Approve did not approve"
        assert self.result(workflow_id)["status"] == "completed"


def _signal_group(pgid: int, sig: int) -> None:
    if _group_alive(pgid):
        try:
            os.killpg(pgid, sig)
        except ProcessLookupError:
            pass


def _group_alive(pgid: int) -> bool:
    """Whether a process of the group still runs (zombies aside: this machine's init may reap them late)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # ended while we looked
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _wait_group_gone(pgid: int, timeout: float) -> bool:
    """Whether every process of the group has ended within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while _group_alive(pgid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True
