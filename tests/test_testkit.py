"""The test kit as a user meets it: the example under examples/testing_agents runs green, and a scripted model
step the agent never asked for fails the user's test (each in its own pytest process, as in a user's CI)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.helpers import ROOT

EXAMPLE = ROOT / "examples" / "testing_agents"


def pytest_in(folder: Path) -> subprocess.CompletedProcess[str]:
    """`python -m pytest` on `folder` with this checkout importable, as a user's CI would run it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "pytest", str(folder), "-q", "-p", "no:cacheprovider", "-o", "addopts="],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_example_passes():
    done = pytest_in(EXAMPLE)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "3 passed" in done.stdout


UNUSED_STEP = """
from testkit import Reply


async def test_scripts_one_reply_too_many(agent_kit):
    agent_kit.script(Reply(text="Hello."), Reply(text="never asked for"))
    run = await agent_kit.run("Hi", agent="shop")
    assert run.output == "Hello."
"""


def test_a_scripted_step_left_unconsumed_fails_the_test(tmp_path):
    folder = tmp_path / "user_tests"
    folder.mkdir()
    for name in ("agents.toml", "shop_tools.py", "conftest.py", "pytest.ini"):
        shutil.copy(EXAMPLE / name, folder / name)
    (folder / "test_unused.py").write_text(UNUSED_STEP)

    done = pytest_in(folder)

    assert done.returncode == 1, done.stdout[-3000:]
    assert "1 passed, 1 error" in done.stdout  # the test itself passed; the kit's teardown failed it
    assert "1 scripted step(s) never requested" in done.stdout and "never asked for" in done.stdout


async def test_every_pattern_runs_through_the_kit():
    """Black box and hybrid runs too, the dev loop's scripted model playing the demo's agents; approvals granted."""
    from testkit import AgentKit

    async with AgentKit(server="time-skipping", dev_model=True) as kit:
        black_box = await kit.run("What is 6000 * 0.2?", workflow="BlackBoxAgentWorkflow")
        hybrid = await kit.run(
            "My net monthly income is 6000. Should I invest 500 a month?", workflow="HybridAgentWorkflow"
        )

    assert black_box.status == "completed" and black_box.tool_names == ["calculator"]
    assert hybrid.status == "completed" and "write_note" in hybrid.tool_names
    assert {a["kind"] for a in hybrid.approvals} >= {"tool_call"} and all(a["approved"] for a in hybrid.approvals)
