"""Worker Deployment settings: which Temporal Worker Deployment (and build id) a worker joins, if any.

`WORKER_DEPLOYMENT_NAME` unset: the worker runs unversioned, as before. Set: it joins that deployment with build
id `WORKER_BUILD_ID`, whose default is something a deploy can trace back to its code: `<package version>-<commit>`
(the commit from `BUILD_COMMIT`, which a deploy sets where no git checkout exists, as in the image; else the
checkout's git).
"""

from __future__ import annotations

import functools
import re
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from config.env import read, var
from models.errors import ConfigError

_NAME = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9_/-]{0,99}$")
_BUILD_ID = re.compile(r"^[A-Za-z0-9_.+-]{1,100}$")


def deployment_name(name: str, raw: str, default: Any) -> str:
    """A Worker Deployment name: no `.` (Temporal writes a version as `<deployment>.<build id>`)."""
    if not _NAME.match(raw):
        raise ConfigError(
            f"{name} must be letters, digits, '-', '_' or '/' (no '.'; at most 100), got {raw!r}: e.g. agents-worker"
        )
    return raw


def build_id(name: str, raw: str, default: Any) -> str:
    """A build id: letters, digits and `.+-_`, at most 100 characters."""
    if not _BUILD_ID.match(raw):
        raise ConfigError(f"{name} must be letters, digits, '.', '+', '-' or '_' (at most 100), got {raw!r}")
    return raw


@dataclass(frozen=True)
class DeploymentSettings:
    """The Worker Deployment this worker joins (docs/deployments.md); `name` None: unversioned."""

    name: str | None = var("WORKER_DEPLOYMENT_NAME", None, deployment_name)
    build_id: str = var("WORKER_BUILD_ID", "", build_id)
    """Empty until read: `read_deployment` fills in the traceable default, for unversioned workers too (they name
    their build with it: `AgentServicePlugin.configure_worker`)."""

    @property
    def versioned(self) -> bool:
        """Whether the worker joins a Worker Deployment."""
        return self.name is not None


def read_deployment(env: Mapping[str, str]) -> DeploymentSettings:
    """WORKER_DEPLOYMENT_NAME and WORKER_BUILD_ID; a build id without a deployment is a ConfigError.

    Unversioned, the build id is still the default `<package version>-<commit>`, for the worker to name its build
    with (given none, the SDK hashes the bytecode of every loaded module: about 5,000 here, 0.85 s of CPU at every
    worker start, for an id nobody can trace to a commit).
    """
    config = read(DeploymentSettings, env)
    if config.name is None and config.build_id:
        raise ConfigError(
            "WORKER_BUILD_ID is set but WORKER_DEPLOYMENT_NAME is not: set WORKER_DEPLOYMENT_NAME to join a "
            "Worker Deployment, or unset WORKER_BUILD_ID to run unversioned"
        )
    return DeploymentSettings(config.name, config.build_id or default_build_id(env))


def default_build_id(env: Mapping[str, str]) -> str:
    """`<package version>-<commit>`: what a deploy traces back to the code that runs."""
    commit = env.get("BUILD_COMMIT", "").strip()[:12] or _git_commit() or "nocommit"
    return f"{_package_version()}-{commit}"


@functools.cache
def _package_version() -> str:
    try:
        return metadata.version("durable-agents")
    except metadata.PackageNotFoundError:
        return "0.0.0"


@functools.cache  # once per process: it runs the code it loaded, whatever the checkout does next
def _git_commit() -> str | None:
    """The checkout's short commit, or None outside a git checkout (the image: set BUILD_COMMIT instead)."""
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            cwd=Path(__file__).resolve().parents[1],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and re.fullmatch(r"[0-9a-f]{4,40}", commit) else None
