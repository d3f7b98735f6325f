"""The README, followed as a newcomer would: every fenced block run as the words after its language say.

One session against the session's dev server: the demo and the test suite's command start first and run beside
the rest; then each block in order (docs/tests.md, "How the README is tested", lists what each kind does):
terminals for the dev loop and the gateway, commands typed in the main terminal, files saved where the README
says and loaded by the product's own loaders. After the README come the marked blocks of `CONTINUED` pages.
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from config.settings import Settings
from devstack.dev_server import port_open
from tests.helpers import ROOT
from tests.readme_blocks import Block, commands, parse_blocks
from tests.readme_session import Session, make_checkout

pytestmark = pytest.mark.xdist_group("default-ports")
"""The demo and the dev loop default to ports 7233/8233 and the README's gateway to 8088: one xdist worker runs these."""

README = ROOT / "README.md"
CONTINUED = [ROOT / "docs" / "runs.md", ROOT / "docs" / "gateway.md"]
"""Pages whose marked blocks continue the README's session (unmarked blocks there are reference, not run)."""
FIXED_PORTS = (8088, 8099)
"""The gateway's and the approval inbox's ports, as the README gives them."""
SUITE_CHECK = "tests/test_readme.py::test_every_readme_block_says_how_it_is_tested"
"""What `./scripts/test` runs here: its set-up, lint, format and type checks, then pytest on one quick test that
needs no fixtures (`--noconftest` spares it the product's import); the whole suite is CI's own run of it."""
DEMO_SAYS = (
    "SCRIPTED LOCAL MODEL SERVER",
    """--name approve --input '{"approver": "you", "request_id": "req-1"}'""",
    "/namespaces/default/workflows/demo-",
    "Stages completed (from the event history): stage 1: plan, stage 2: specialists, stage 3: approval, "
    "stage 4: execute, stage 5: notify",
    '"status": "completed"',
)
"""What the README says the demo shows."""


def marked(path: Path) -> list[Block]:
    return [b for b in parse_blocks(path) if b.kind is not None]


def test_every_readme_block_says_how_it_is_tested():
    blocks = parse_blocks(README)
    assert [b.where for b in blocks if b.kind is None] == [], "blocks without test:KIND after their language"
    assert commands(blocks[0].text) == [["./scripts/demo"], ["./scripts/test"]], "the README opens with two commands"
    assert {b.kind for b in blocks} == {"intro", "background", "shell", "file", "compose"}
    for page in CONTINUED:
        assert marked(page), f"{page.name} has no marked blocks"


def test_a_broken_block_fails_the_session(tmp_path):
    """A command that fails, or output without what a block expects, fails the test, naming the line."""
    session = Session(tmp_path, {"PATH": os.environ["PATH"], "HOME": str(tmp_path)}, tmp_path)
    try:
        with pytest.raises(AssertionError, match=r"README\.md:3: exit status 1"):
            session.shell(Block("README.md", 3, "bash", "shell", text="true\nfalse\necho never\n"))
        with pytest.raises(AssertionError, match=r"README\.md:9: output lacks 'ready'"):
            session.shell(Block("README.md", 9, "bash", "shell", {"expect": ["ready"]}, "X=1\necho $X\n"))
        session.shell(Block("README.md", 12, "bash", "shell", {"expect": ["^1$"]}, 'echo "$X"\n'))  # state carries
    finally:
        session.close()


async def test_the_readme_runs_as_written(dev_server, client, tmp_path):
    busy = [port for port in FIXED_PORTS if port_open(port)]
    assert not busy, f"the README's gateway and inbox listen on {FIXED_PORTS}; something holds {busy}"
    await asyncio.to_thread(follow_the_readme, dev_server.address, tmp_path)


def follow_the_readme(address: str, tmp_path: Path) -> None:
    blocks = parse_blocks(README)
    written = {b.option("path") for page in (README, *CONTINUED) for b in marked(page) if b.kind == "file"}
    leave_out = {Path(p).parts[0] for p in written if p} | {".env", ".temporal", "notes.db", "outbox.jsonl"}
    checkout = make_checkout(tmp_path, leave_out)
    (tmp_path / "logs").mkdir()
    session = Session(checkout, reader_env(address, tmp_path), tmp_path / "logs")
    try:
        demo, suite = start_intro(session, blocks[0])
        for block in [*blocks[1:], *(b for page in CONTINUED for b in marked(page))]:
            started = time.monotonic()
            run_block(session, block)
            print(f"{block.where} {block.kind}: {time.monotonic() - started:.1f} s")  # shown when the test fails
        check_agents_file(checkout, session.env)
        check_intro(session, demo, suite)
    finally:
        session.close()


def reader_env(address: str, tmp_path: Path) -> dict[str, str]:
    """The reader's environment: no keys, no cluster settings but the session's dev server, files kept apart."""
    dropped = ("ANTHROPIC_", "OPENAI_", "TEMPORAL_", "NOTIFY_", "APPROVAL_", "GATEWAY_", "BLOB_STORE_", "LANGFUSE_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
    for name in ("AGENTS_FILE", "TOOL_MODULES", "NOTES_DB", "PAYLOAD_ENCRYPTION_KEY"):
        env.pop(name, None)
    # The README's commands use this checkout's code (a fresh clone's venv points there anyway).
    env["PYTHONPATH"] = str(ROOT)
    env.update(TEMPORAL_ADDRESS=address, BLOB_STORE_DIR=str(tmp_path / "blobs"), NOTES_DB=str(tmp_path / "notes.db"))
    env["NOTIFY_OUTBOX"] = str(tmp_path / "outbox.jsonl")
    return env


def run_block(session: Session, block: Block) -> None:
    """One block, as the README tells the reader to use it."""
    if stop := block.option("stop"):
        session.interrupt(stop)
    if pending := block.option("pending"):
        session.wait_pending(pending, block)
    if block.kind == "background":
        session.background(block)
    elif block.kind == "shell":
        offset = session.terminal.stat().st_size
        session.shell(block)
        if link := block.option("link"):
            session.follow_link(link, offset, block)
    elif block.kind == "file":
        path = session.checkout / (block.option("path") or "")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(block.text)
    elif block.kind == "result":
        check_result(session, block)
    elif block.kind == "compose":
        check_compose(session, block)
    else:
        raise AssertionError(f"{block.where}: test:{block.kind} belongs only at the top")


def check_result(session: Session, block: Block) -> None:
    """The shown result has the real one's fields and values (the trace id aside: a new one every run)."""
    shown, real = json.loads(block.text), session.result(block.option("of") or "")
    assert re.fullmatch("[0-9a-f]{32}", shown.pop("trace_id")) and re.fullmatch("[0-9a-f]{32}", real.pop("trace_id"))
    assert shown == real, f"{block.where} shows {shown}, the run returned {real}"


def check_compose(session: Session, block: Block) -> None:
    """`cp` for real; each `docker compose ... up` checked by the real Compose v2 parser on the file and `.env` it
    would use (no Docker engine here, so nothing is started)."""
    binary = Path(importlib.util.find_spec("compose").submodule_search_locations[0]) / "docker-compose"  # type: ignore[union-attr,index]
    for argv in commands(block.text):
        if argv[0] == "cp":
            session.shell(dataclasses.replace(block, kind="shell", text=" ".join(argv) + "\n"))
            continue
        assert argv[:2] == ["docker", "compose"] and "up" in argv, f"{block.where}: {argv}"
        options, up = argv[2 : argv.index("up")], argv[argv.index("up") + 1 :]
        assert all(o in ("-d", "--scale") or o.startswith("worker=") for o in up), f"{block.where}: {up}"
        done = subprocess.run(
            [str(binary), "--env-file", ".env", "-f", "docker-compose.yml", *options, "config", "--format", "json"],
            cwd=session.checkout,
            env={"PATH": os.environ["PATH"], "HOME": str(session.logs)},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, f"{block.where}: {done.stderr}"
        worker = json.loads(done.stdout)["services"]["worker"]
        assert "container_name" not in worker, "--scale needs a worker without a fixed container name"


def check_agents_file(checkout: Path, env: dict[str, str]) -> None:
    """The README's agents file through the product's loader: the tool module imported, the MCP server started
    and listed by the product's MCP client, each tool with the policy the README's comments give it."""
    from tools.loader import load_registry

    folder = checkout / "my_agents"
    settings = dataclasses.replace(
        Settings.from_env(env), agents_file=str(folder / "agents.toml"), tool_modules=("support_tools",)
    )
    saved = sys.modules.pop("support_tools", None)  # another test may have imported a module of that name
    sys.path.insert(0, str(folder))
    # Without this virtualenv on PATH (the dev loop puts it first), as a worker started otherwise may run: a bare
    # `python` in `command` would then be another interpreter, and the README says why it must not be.
    path, venv = os.environ["PATH"], Path(sys.executable).parent.resolve()
    os.environ["PATH"] = os.pathsep.join(p for p in path.split(os.pathsep) if p and Path(p).resolve() != venv)
    try:
        loaded = asyncio.run(load_registry(settings))
        asyncio.run(loaded.close())
    finally:
        os.environ["PATH"] = path
        sys.path.remove(str(folder))
        sys.modules.pop("support_tools", None)
        if saved is not None:
            sys.modules["support_tools"] = saved
    tools = loaded.registry.tools
    assert (tools["order_total"].effect, tools["crm__lookup_order"].effect) == ("read", "read")
    assert tools["crm__refund_order"].requires_approval
    assert set(loaded.registry.agents["support"].tools) >= {"calculator", "order_total", "crm__refund_order"}


def start_intro(session: Session, block: Block) -> tuple[subprocess.Popen[bytes], subprocess.Popen[bytes]]:
    """The two first commands, beside the rest: the demo on a task queue of its own, Enter pressed for each
    approval; `./scripts/test` in this checkout (its type-check cache), on one quick test."""
    demo_env = {"TEMPORAL_TASK_QUEUE": f"readme-demo-{uuid.uuid4().hex[:8]}"}
    demo_env.update(NOTES_DB=str(session.logs / "demo-notes.db"), NOTIFY_OUTBOX=str(session.logs / "demo-outbox.jsonl"))
    demo = session.bash("./scripts/demo", session.logs / "demo.log", stdin=subprocess.PIPE, env=demo_env)
    assert demo.stdin is not None
    demo.stdin.write(b"\n\n")  # Enter, for the plan and for the note
    demo.stdin.close()
    suite = session.bash(
        after_the_type_check() + f"{ROOT}/scripts/test -q -p no:cacheprovider -n 0 --noconftest {SUITE_CHECK}",
        session.logs / "suite.log",
        cwd=ROOT,
    )
    return demo, suite


def after_the_type_check() -> str:
    """Shell that waits (up to 5 min) for the type check of the `./scripts/test` running this suite, if one does.

    That script runs mypy beside pytest (TYPECHECK_PID); the `./scripts/test` started here would otherwise type
    check on a cold cache at the same time, both slower (a fresh-clone suite took 89 s more). The pid counts as
    done once it is gone, a zombie, or no longer mypy."""
    pid = os.environ.get("TYPECHECK_PID", "")
    if not pid.isdigit():
        return ""
    running = f"grep -qs mypy /proc/{pid}/cmdline && ! grep -qs '^State:[[:space:]]*Z' /proc/{pid}/status"
    return f"for _ in $(seq 600); do {running} || break; sleep 0.5; done\n"


def check_intro(session: Session, demo: subprocess.Popen[bytes], suite: subprocess.Popen[bytes]) -> None:
    code, shown = demo.wait(120), (session.logs / "demo.log").read_text()
    assert code == 0, f"./scripts/demo exited with {code}:\n{shown[-4000:]}"
    for said in DEMO_SAYS:
        assert said in shown, f"the demo did not show {said!r}:\n{shown[-4000:]}"
    assert len((session.logs / "demo-outbox.jsonl").read_text().splitlines()) == 1, "one notification per run"
    code, shown = suite.wait(300), (session.logs / "suite.log").read_text()
    assert code == 0 and "1 passed" in shown, f"./scripts/test exited with {code}:\n{shown[-4000:]}"
