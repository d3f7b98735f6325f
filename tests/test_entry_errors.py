"""Every command ends a configuration or connection error with one line naming the setting, and exit status 2.

A traceback is printed only with `--debug` or LOG_LEVEL=DEBUG (config/cli.py).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from temporalio.service import RPCError, RPCStatusCode

from config.cli import rpc_problem, run_command, temporal_unreachable
from models.errors import ConfigError
from tests.helpers import ROOT

UNREACHABLE = "127.0.0.1:9"
"""Nothing listens on the discard port: a connection is refused at once."""
TOKENS = (
    '[tokens.alice]\nsha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"\nroles = ["starter"]\n'
)


def command(tmp_path, args: list[str], **env: str) -> subprocess.CompletedProcess:
    """One of the product's commands as a user starts it, from the repository root."""
    (tmp_path / "tokens.toml").write_text(TOKENS)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "LOG_LEVEL", "GATEWAY_"))}
    base.update(
        BLOB_STORE_DIR=str(tmp_path / "blobs"),
        NOTES_DB=str(tmp_path / "notes.db"),
        GATEWAY_TOKENS=str(tmp_path / "tokens.toml"),
        GATEWAY_ID_SECRET="x" * 40,
    )
    return subprocess.run(
        [sys.executable, *args], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("program", "args"),
    [
        ("worker", ["worker.py"]),
        ("gateway", ["-m", "gateway"]),
        ("progress", ["-m", "progress", "follow", "some-run"]),
    ],
)
def test_an_unreachable_temporal_is_one_line_naming_temporal_address(tmp_path, program, args):
    done = command(tmp_path, args, TEMPORAL_ADDRESS=UNREACHABLE)
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith(
        f"{program}: cannot reach Temporal at {UNREACHABLE} (Connection refused): check TEMPORAL_ADDRESS"
    )


@pytest.mark.parametrize(
    ("program", "args"),
    [
        ("archives", ["-m", "archives", "list"]),
        ("tools", ["-m", "tools", "check-agents", "tests/fixtures/agents/agents.toml"]),
        ("worker", ["worker.py"]),
    ],
)
def test_a_malformed_setting_is_one_line_naming_it(tmp_path, program, args):
    done = command(tmp_path, args, PAYLOAD_OFFLOAD_BYTES="lots")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == f"{program}: PAYLOAD_OFFLOAD_BYTES must be an integer, got 'lots'"


@pytest.mark.parametrize(
    ("program", "args"),
    [("worker", ["worker.py"]), ("releases", ["-m", "releases", "gate", "--histories", "tests/histories"])],
)
def test_a_build_id_without_a_deployment_is_one_line_naming_both(tmp_path, program, args):
    done = command(tmp_path, args, WORKER_BUILD_ID="v2")
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        f"{program}: WORKER_BUILD_ID is set but WORKER_DEPLOYMENT_NAME is not: set WORKER_DEPLOYMENT_NAME to join "
        "a Worker Deployment, or unset WORKER_BUILD_ID to run unversioned"
    )


def test_the_rollout_refuses_a_bad_ramp_in_one_line(tmp_path):
    done = command(tmp_path, ["-m", "releases", "rollout", "--deployment-name", "agents", "--build-id", "v2",
                              "--ramp", "10,150"])  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == "releases: --ramp percentages must be between 0 and 100 (exclusive), got '10,150'"


def test_a_wrong_namespace_is_a_setting_and_an_unknown_run_is_one_line_too(tmp_path, dev_server):
    follow = ["-m", "progress", "follow", "no-such-run"]
    wrong = command(tmp_path, follow, TEMPORAL_ADDRESS=dev_server.address, TEMPORAL_NAMESPACE="nope")
    assert wrong.returncode == 2
    assert (
        wrong.stderr
        == "progress: Temporal says: Namespace nope is not found. Set TEMPORAL_NAMESPACE to an existing namespace\n"
    )
    missing = command(tmp_path, follow, TEMPORAL_ADDRESS=dev_server.address)
    assert missing.returncode == 1
    assert missing.stderr == "progress: workflow not found for ID: no-such-run (namespace 'default')\n"


@pytest.mark.parametrize("how", [{"args": ["--debug"]}, {"env": {"LOG_LEVEL": "DEBUG"}}])
def test_debug_adds_the_traceback(tmp_path, how):
    args = ["-m", "progress", "follow", "some-run", *how.get("args", [])]
    done = command(tmp_path, args, TEMPORAL_ADDRESS=UNREACHABLE, **how.get("env", {}))
    assert done.returncode == 2
    assert "Traceback (most recent call last)" in done.stderr and "Failed client connect" in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("progress: cannot reach Temporal")


def test_run_command_strips_debug_and_maps_errors(capsys):
    seen: list[list[str]] = []

    def fails(argv: list[str]) -> int:
        seen.append(argv)
        raise ConfigError("WORKER_THING must be a number")

    assert run_command("thing", fails, ["a", "--debug", "b"]) == 2
    assert seen == [["a", "b"]]
    err = capsys.readouterr().err
    assert err.endswith("thing: WORKER_THING must be a number\n") and "Traceback" in err
    assert run_command("thing", fails, ["a"]) == 2
    assert capsys.readouterr().err == "thing: WORKER_THING must be a number\n"
    assert run_command("thing", lambda argv: 0, []) == 0


def test_temporal_refusals_a_setting_fixes_are_config_errors_and_others_are_not():
    missing = RPCError("Namespace nope is not found.", RPCStatusCode.NOT_FOUND, b"")
    assert "TEMPORAL_NAMESPACE" in str(rpc_problem(missing))
    assert "TEMPORAL_API_KEY" in str(rpc_problem(RPCError("bad key", RPCStatusCode.UNAUTHENTICATED, b"")))
    assert rpc_problem(RPCError("workflow not found", RPCStatusCode.NOT_FOUND, b"")) is None
    refused = RuntimeError(
        'Failed client connect: Server connection error: tonic::transport::Error(Transport, ConnectError(ConnectError("tcp '
        'connect error", 127.0.0.1:9, Os { code: 111, kind: ConnectionRefused, message: "Connection refused" })))'
    )
    assert str(temporal_unreachable("127.0.0.1:9", refused)).startswith(
        "cannot reach Temporal at 127.0.0.1:9 (Connection refused): check TEMPORAL_ADDRESS"
    )
