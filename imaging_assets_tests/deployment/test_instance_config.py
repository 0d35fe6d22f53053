"""The shipped instance files load as they are: docker/dagster.yaml (DockerRunLauncher, S3 compute
logs, Postgres) and docker/k8s/dagster-instance.yaml (K8sRunLauncher; what the Helm chart renders
from docker/k8s/values.yaml), against the test PostgreSQL and SeaweedFS."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
from dagster import DagsterInstance

from imaging_assets_tests.conftest import PROJECT_ROOT
from imaging_assets_tests.deployment.stack import INSTANCE_FILE, K8S_INSTANCE_FILE, load_yaml

pytestmark = pytest.mark.s3

FAKE_KUBECONFIG = """
apiVersion: v1
kind: Config
clusters:
  - name: none
    cluster: {server: "https://127.0.0.1:1"}
contexts:
  - name: none
    context: {cluster: none, user: none}
current-context: none
users:
  - name: none
    user: {token: not-a-token}
"""


@pytest.fixture()
def instance_env(monkeypatch, tmp_path, postgres, s3_server):
    """DAGSTER_HOME in a temp dir and the variables the shipped files read, set to the test
    servers (a database of its own on the session's Postgres)."""
    database = postgres.create_database(f"instance_{uuid.uuid4().hex[:8]}")
    bucket = s3_server.make_bucket(f"instance-{uuid.uuid4().hex[:8]}")
    env = {
        **postgres.env(database),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "DAGSTER_COMPUTE_LOGS_BUCKET": bucket,
        "DAGSTER_COMPUTE_LOGS_PREFIX": "compute-logs",
        "DAGSTER_COMPUTE_LOGS_ENDPOINT": s3_server.endpoint_url,
        "AWS_ACCESS_KEY_ID": s3_server.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
        "AWS_REGION": s3_server.region,
        "AWS_DEFAULT_REGION": s3_server.region,
    }
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    Path(env["DAGSTER_HOME"]).mkdir()
    return env


def _check_storage_and_compute_logs(instance: DagsterInstance, env: dict, s3_server) -> None:
    # storage: Postgres, all three stores, writable
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
    assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
    instance.add_dynamic_partitions("plates", ["source_x__PLATE1"])
    assert instance.get_dynamic_partitions("plates") == ["source_x__PLATE1"]
    assert instance.get_runs() == []
    # run queue, limits and monitoring as shipped
    assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
    assert instance.run_monitoring_enabled
    assert instance.run_monitoring_max_resume_run_attempts == 0
    assert instance.run_monitoring_start_timeout_seconds == 180
    assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] == 300
    assert type(instance.scheduler).__name__ == "DagsterDaemonScheduler"
    # compute logs: a captured print lands in the S3 bucket
    manager = instance.compute_log_manager
    assert type(manager).__name__ == "S3ComputeLogManager"
    log_key = ["config-check", uuid.uuid4().hex[:8], "step"]
    with manager.capture_logs(log_key):
        print("hello from the shipped instance", flush=True)
    client = s3_server.boto3_client()
    listed = client.list_objects_v2(
        Bucket=env["DAGSTER_COMPUTE_LOGS_BUCKET"], Prefix="compute-logs/"
    )
    keys = [item["Key"] for item in listed.get("Contents", [])]
    (out_key,) = [key for key in keys if log_key[1] in key and key.endswith(".out")]
    body = client.get_object(Bucket=env["DAGSTER_COMPUTE_LOGS_BUCKET"], Key=out_key)["Body"]
    assert b"hello from the shipped instance" in body.read()


def test_shipped_docker_instance_loads_unchanged(instance_env, s3_server):
    home = Path(instance_env["DAGSTER_HOME"])
    shutil.copy(INSTANCE_FILE, home / "dagster.yaml")
    with DagsterInstance.get() as instance:
        launcher = instance.run_launcher
        assert type(launcher).__name__ == "DockerRunLauncher"  # no engine needed to load it
        shipped = load_yaml(INSTANCE_FILE)["run_launcher"]["config"]
        assert launcher.networks == [shipped["network"]]
        assert list(launcher.env_vars) == shipped["env_vars"]
        _check_storage_and_compute_logs(instance, instance_env, s3_server)


def test_shipped_limits_match_the_repository_instance():
    assert (
        load_yaml(INSTANCE_FILE)["concurrency"]
        == load_yaml(PROJECT_ROOT / "dagster.yaml")["concurrency"]
    )


def test_k8s_instance_loads(instance_env, s3_server, tmp_path, monkeypatch):
    """(test_k8s.py checks that this file is what the chart renders from the values and
    that it shares the docker instance's queue, limits, monitoring and compute logs.)"""
    pytest.importorskip("dagster_k8s")
    config = load_yaml(K8S_INSTANCE_FILE)
    # No cluster here: the launcher loads its client config eagerly, so point it at a kubeconfig
    # that parses but leads nowhere. The chart writes the Postgres address into the file (a
    # placeholder in values.yaml): point it at the test server. Every other key is as shipped.
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(FAKE_KUBECONFIG)
    config["run_launcher"]["config"]["load_incluster_config"] = False
    config["run_launcher"]["config"]["kubeconfig_file"] = str(kubeconfig)
    for storage in ("run_storage", "event_log_storage", "schedule_storage"):
        postgres_db = config[storage]["config"]["postgres_db"]
        assert postgres_db["password"] == {"env": "DAGSTER_PG_PASSWORD"}  # set by the chart
        postgres_db["hostname"] = instance_env["DAGSTER_POSTGRES_HOST"]
        postgres_db["port"] = int(instance_env["DAGSTER_POSTGRES_PORT"])
        postgres_db["username"] = instance_env["DAGSTER_POSTGRES_USER"]
        postgres_db["db_name"] = instance_env["DAGSTER_POSTGRES_DB"]
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", instance_env["DAGSTER_POSTGRES_PASSWORD"])
    import yaml

    home = Path(instance_env["DAGSTER_HOME"])
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    with DagsterInstance.get() as instance:
        launcher = instance.run_launcher
        assert type(launcher).__name__ == "K8sRunLauncher"
        shipped = load_yaml(K8S_INSTANCE_FILE)["run_launcher"]["config"]
        assert launcher.job_namespace == shipped["job_namespace"]
        assert launcher.instance_config_map == shipped["instance_config_map"]
        assert list(launcher.env_secrets) == shipped["env_secrets"]
        _check_storage_and_compute_logs(instance, instance_env, s3_server)
