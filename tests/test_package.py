"""The wheel alone runs the product: built from this checkout, installed in a fresh venv outside it, the
worker and the gateway it installs serve a run on the dev server, from a directory with no source in it.

The venv gets its dependencies from the test venv's site-packages (a plain path entry, so the test venv's
editable install of this checkout is not loaded) instead of downloading them: `pip check` then proves the
wheel's declared dependencies are what those packages satisfy, and nothing of the checkout is importable.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import httpx
import pytest

from devstack.dev_server import free_port
from devstack.fake_anthropic import Reply
from tests.gateway_support import TOKENS, auth, write_tokens
from tests.helpers import ROOT, WorkerProcess, eventually

PRODUCT_PACKAGES = {
    "activities", "archives", "config", "gateway", "models", "payloads", "progress", "service", "telemetry",
    "tools", "workflows",
}  # fmt: skip


def run(*command: str | Path, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{command} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A venv outside the checkout holding only the wheel (and, by path, the dependencies); its directory."""
    work = tmp_path_factory.mktemp("package")
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", work, ROOT, cwd=work)
    (wheel,) = work.glob("durable_agents-*.whl")
    deps = work / "deps"  # the test venv's packages, minus this project's own (editable) install
    deps.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.startswith(("durable_agents", "__editable__", "_durable_agents")) and entry.suffix != ".pth":
            (deps / entry.name).symlink_to(entry)
    venv = work / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=work)
    site = Path(run(venv / "bin/python", "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=work))
    (Path(str(site).strip()) / "dependencies.pth").write_text(f"{deps}\n")
    run(sys.executable, "-m", "pip", "--python", venv / "bin/python", "install", "-q", "--no-deps", wheel, cwd=work)
    return venv


def clean_env(**extra: str) -> dict[str, str]:
    """The environment of a process started outside the checkout: no PYTHONPATH, nothing pointing back here."""
    env = {k: v for k, v in os.environ.items() if k not in {"PYTHONPATH", "VIRTUAL_ENV"}}
    return {**env, **extra}


def test_the_wheel_holds_every_product_package_and_nothing_of_the_dev_tooling(installed):
    (wheel,) = installed.parent.glob("durable_agents-*.whl")
    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist() if not name.startswith("durable_agents-")}
    assert tops == PRODUCT_PACKAGES | {"worker.py"}
    subpackages = {name.rsplit("/", 1)[0] for name in zipfile.ZipFile(wheel).namelist() if name.endswith("__init__.py")}
    on_disk = {
        str(p.parent.relative_to(ROOT))
        for p in ROOT.glob("*/**/__init__.py")
        if p.parts[len(ROOT.parts)] in PRODUCT_PACKAGES
    }
    assert subpackages == on_disk  # activities/black_box, activities/providers, ...


def test_dependencies_are_declared_and_the_checkout_is_not_imported(installed):
    run(sys.executable, "-m", "pip", "--python", installed / "bin/python", "check", cwd=installed)
    where = run(installed / "bin/python", "-c", "import workflows, worker; print(workflows.__file__, worker.__file__)",
                cwd=installed.parent, env=clean_env())  # fmt: skip
    assert str(ROOT) not in where and where.count(str(installed)) == 2, where


async def test_the_installed_worker_and_gateway_serve_a_run(
    installed, dev_server, worker_process_env, fake_llm, tmp_path
):
    fake_llm.push(Reply(text="Four."))
    env = clean_env(**worker_process_env)
    worker = WorkerProcess(env, tmp_path / "worker.log", command=[str(installed / "bin/durable-agents-worker")],
                           cwd=tmp_path).start(timeout=60)  # fmt: skip
    port = free_port()
    gateway_env = clean_env(**worker_process_env, GATEWAY_PORT=str(port), GATEWAY_ID_SECRET="package-ids-" + "0" * 32,
                            GATEWAY_TOKENS=str(write_tokens(tmp_path / "tokens.toml")))  # fmt: skip
    gateway = subprocess.Popen([installed / "bin/durable-agents-gateway"], cwd=tmp_path, env=gateway_env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", trust_env=False, timeout=30) as http:

            async def serving() -> bool:
                try:
                    return (await http.get("/healthz")).status_code == 200
                except httpx.TransportError:
                    assert gateway.poll() is None, gateway.stderr.read() if gateway.stderr else ""
                    return False

            await eventually(serving, 60)
            assert "starter" in TOKENS["alice"][1]
            started = await http.post("/v1/runs", headers=auth("alice"),
                                      json={"workflow": "AgentLoopWorkflow", "input": {"prompt": "2 + 2?"}})  # fmt: skip
            assert started.status_code == 201, started.text
            path = f"/v1/runs/{started.json()['workflow_id']}"

            async def completed() -> bool:
                return (await http.get(path, headers=auth("alice"))).json()["temporal_status"] == "COMPLETED"

            await eventually(completed, 60)
            view = (await http.get(path, headers=auth("alice"))).json()
            assert view["result"]["output"] == "Four.", view
    finally:
        gateway.terminate()
        gateway.wait(20)
        worker.stop()
    assert len(fake_llm.requests) == 1
