"""The wheel alone runs the product: built from this checkout, installed in a fresh venv outside it, the
worker and the gateway it installs serve a run on the dev server, from a directory with no source in it.

The venv (tests/package_support.py) takes its dependencies from the test venv's packages instead of
downloading them: `pip check` proves the wheel declares what it imports, and nothing of the checkout is importable.
"""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import httpx
import pytest

from devstack.dev_server import free_port
from devstack.fake_anthropic import Reply
from tests.gateway_support import TOKENS, auth, write_tokens
from tests.helpers import ROOT, WorkerProcess, eventually
from tests.package_support import WHEEL_GLOB, clean_env, run

pytestmark = pytest.mark.xdist_group("wheel")
"""With tests/test_container.py on one xdist worker: the wheel is built once, and two builds never share build/."""

PRODUCT_PACKAGES = {
    "activities", "archives", "config", "gateway", "models", "payloads", "progress", "releases", "service", "spend",
    "telemetry", "tools", "workflows",
}  # fmt: skip


@pytest.fixture
def installed(installed_wheel: Path) -> Path:
    return installed_wheel


def test_the_wheel_holds_every_product_package_and_nothing_of_the_dev_tooling(installed):
    (wheel,) = installed.parent.glob(WHEEL_GLOB)
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
