"""Deploy-time configuration without a server: tuning knobs, the cluster connection, /healthz."""

from __future__ import annotations

import asyncio

import pytest
from temporalio.service import TLSConfig

from config.settings import Settings
from devstack.dev_server import free_port
from models.errors import ConfigError
from telemetry.health import Health, HealthServer, probe


def test_tuning_knobs_have_sane_defaults():
    s = Settings.from_env({})
    assert (s.task_queue, s.max_concurrent_activities, s.max_concurrent_workflow_tasks, s.max_cached_workflows) == (
        "agents",
        100,
        100,
        25,
    )
    assert s.identity is None and s.health.port == 0 and s.health.host == "127.0.0.1"


def test_tuning_knobs_from_the_environment():
    s = Settings.from_env(
        {
            "TEMPORAL_TASK_QUEUE": "agents-eu",
            "WORKER_MAX_CONCURRENT_ACTIVITIES": "20",
            "WORKER_MAX_CONCURRENT_WORKFLOW_TASKS": "8",
            "WORKER_MAX_CACHED_WORKFLOWS": "500",
            "WORKER_IDENTITY": "worker-eu-1",
            "WORKER_HEALTH_HOST": "0.0.0.0",
            "WORKER_HEALTH_PORT": "8081",
        }
    )
    assert (s.task_queue, s.max_concurrent_activities, s.max_concurrent_workflow_tasks, s.max_cached_workflows) == (
        "agents-eu",
        20,
        8,
        500,
    )
    assert (s.identity, s.health.host, s.health.port) == ("worker-eu-1", "0.0.0.0", 8081)


@pytest.mark.parametrize(
    "name, value",
    [
        ("WORKER_MAX_CONCURRENT_WORKFLOW_TASKS", "0"),
        ("WORKER_MAX_CONCURRENT_WORKFLOW_TASKS", "many"),
        ("WORKER_HEALTH_PORT", "70000"),
        ("WORKER_HEALTH_PORT", "-1"),
    ],
)
def test_a_malformed_knob_is_named(name, value):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


def test_temporal_cloud_with_an_api_key_turns_tls_on():
    config = Settings.from_env(
        {
            "TEMPORAL_ADDRESS": "my-ns.a1b2c.tmprl.cloud:7233",
            "TEMPORAL_NAMESPACE": "my-ns.a1b2c",
            "TEMPORAL_API_KEY": "key-from-the-cloud-console",
        }
    ).temporal
    assert config == {
        "target_host": "my-ns.a1b2c.tmprl.cloud:7233",
        "namespace": "my-ns.a1b2c",
        "api_key": "key-from-the-cloud-console",
        "tls": True,
    }


def test_mtls_cluster_reads_the_client_certificate(tmp_path):
    (tmp_path / "client.pem").write_bytes(b"CERT")
    (tmp_path / "client.key").write_bytes(b"KEY")
    config = Settings.from_env(
        {
            "TEMPORAL_ADDRESS": "temporal.internal:7233",
            "TEMPORAL_TLS_CLIENT_CERT_PATH": str(tmp_path / "client.pem"),
            "TEMPORAL_TLS_CLIENT_KEY_PATH": str(tmp_path / "client.key"),
            "TEMPORAL_TLS_SERVER_NAME": "temporal.internal",
        }
    ).temporal
    assert config["target_host"] == "temporal.internal:7233"
    tls = config["tls"]
    assert isinstance(tls, TLSConfig)
    assert (tls.client_cert, tls.client_private_key, tls.domain) == (b"CERT", b"KEY", "temporal.internal")


def test_local_default_and_empty_values_mean_unset():
    # Compose and Kubernetes pass "" for an unset variable; it must not become a certificate path.
    assert Settings.from_env({"TEMPORAL_API_KEY": "", "TEMPORAL_TLS_CLIENT_CERT_PATH": ""}).temporal == {
        "target_host": "localhost:7233"
    }


def test_a_missing_certificate_is_a_config_error():
    with pytest.raises(ConfigError, match="No such file"):
        Settings.from_env(
            {
                "TEMPORAL_TLS_CLIENT_CERT_PATH": "/nonexistent/client.pem",
                "TEMPORAL_TLS_CLIENT_KEY_PATH": "/nonexistent/k",
            }
        )


async def test_healthz_follows_the_worker_state():
    health, polling = Health(), [True]
    server = await HealthServer(health, "127.0.0.1", free_port()).start()
    port = server.port
    status = lambda: asyncio.to_thread(probe, port)  # noqa: E731  (urllib blocks; keep the loop serving)
    try:
        assert await status() == 503  # starting
        health.serving(lambda: polling[0])
        assert await status() == 200
        polling[0] = False  # a fatal worker error stops polling
        assert await status() == 503
        polling[0] = True
        health.stopping()
        assert await status() == 503
    finally:
        await server.stop()
    assert await status() == 0  # closed


async def test_health_port_zero_is_off_and_a_taken_port_is_a_config_error():
    off = await HealthServer(Health(), "127.0.0.1", 0).start()
    await off.stop()
    taken = await HealthServer(Health(), "127.0.0.1", free_port()).start()
    try:
        with pytest.raises(ConfigError, match="WORKER_HEALTH_PORT"):
            await HealthServer(Health(), "127.0.0.1", taken.port).start()
    finally:
        await taken.stop()


def test_without_a_deployment_name_the_worker_is_unversioned():
    from worker import deployment_config

    settings = Settings.from_env({})
    assert not settings.deployment.versioned and deployment_config(settings) is None


def test_a_deployment_name_versions_the_worker_with_a_traceable_build_id():
    from worker import deployment_config

    settings = Settings.from_env({"WORKER_DEPLOYMENT_NAME": "agents-worker", "BUILD_COMMIT": "abc123def456789"})
    assert settings.deployment.build_id.endswith("-abc123def456")  # <package version>-<commit>
    config = deployment_config(settings)
    assert config is not None and config.use_worker_versioning
    assert (config.version.deployment_name, config.version.build_id) == ("agents-worker", settings.deployment.build_id)
    explicit = Settings.from_env({"WORKER_DEPLOYMENT_NAME": "agents-worker", "WORKER_BUILD_ID": "2026.12.07-1"})
    assert explicit.deployment.build_id == "2026.12.07-1"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"WORKER_BUILD_ID": "v2"}, "WORKER_DEPLOYMENT_NAME"),
        ({"WORKER_DEPLOYMENT_NAME": "agents.worker"}, "WORKER_DEPLOYMENT_NAME"),
        ({"WORKER_DEPLOYMENT_NAME": "agents", "WORKER_BUILD_ID": "v 2"}, "WORKER_BUILD_ID"),
    ],
)
def test_bad_deployment_settings_are_named(env, named):
    with pytest.raises(ConfigError, match=named):
        Settings.from_env(env)


def test_every_workflow_type_declares_its_versioning_behavior():
    from temporalio import workflow
    from temporalio.common import VersioningBehavior

    from service.plugin import workflows
    from workflows.versioning import BEHAVIORS

    declared = {}
    for cls in workflows(versioned=True):
        defn = workflow._Definition.must_from_class(cls)
        declared[defn.name] = defn.versioning_behavior
    assert declared == BEHAVIORS
    # Unversioned workers run the same types without a behavior: the server refuses one from them.
    unversioned = [workflow._Definition.must_from_class(cls) for cls in workflows(versioned=False)]
    assert {d.name: d.versioning_behavior for d in unversioned} == dict.fromkeys(
        BEHAVIORS, VersioningBehavior.UNSPECIFIED
    )
