"""The product as a wheel installs it: built from this checkout into a venv outside it (tests/test_package.py
and the image's runtime in tests/test_container.py both run this venv, as the Dockerfile does).

The venv gets its dependencies from the test venv's site-packages by a plain path entry, so the test venv's
editable install of this checkout (loaded by a `.pth` hook there) is not: nothing of the checkout is importable.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from tests.helpers import ROOT

WHEEL_GLOB = "durable_agents-*.whl"


def run(*command: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    """`command`'s stdout; AssertionError with its output when it fails."""
    done = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{command} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def install_wheel(work: Path) -> Path:
    """Build the wheel into `work` and install it alone in `work/venv`; the venv's directory."""
    # Built from a copy of the tracked tree: setuptools writes build/ and *.egg-info into the tree it builds, where a
    # stale build/lib would ship deleted modules and another build (a second checkout's run, a developer's) could
    # meet this one.
    source = work / "source"
    tracked = run("git", "ls-files", "-z", cwd=ROOT).split("\0")
    for name in filter(None, tracked):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", work, source, cwd=work)
    (wheel,) = work.glob(WHEEL_GLOB)
    deps = work / "deps"
    deps.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.startswith(("durable_agents", "__editable__")) and entry.suffix != ".pth":
            (deps / entry.name).symlink_to(entry)
    venv = work / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=work)
    site = run(venv / "bin/python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=work)
    (Path(site.strip()) / "dependencies.pth").write_text(f"{deps}\n")
    run(sys.executable, "-m", "pip", "--python", venv / "bin/python", "install", "-q", "--no-deps", wheel, cwd=work)
    return venv


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a process started outside the checkout: no PYTHONPATH, nothing pointing back here."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    return {**env, **extra}
