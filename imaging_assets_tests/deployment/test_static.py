"""Static checks of docker/: hadolint on the Dockerfile, the compose file against the Compose
spec, and the files agreeing with each other (variables, network, code server host and port).
The Dockerfile's CMD is also run natively and must answer the gRPC health check."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imaging_assets_tests.conftest import PROJECT_ROOT
from imaging_assets_tests.deployment.stack import (
    CODE_PORT,
    CODE_SERVICE,
    COMPOSE_FILE,
    DAEMON_SERVICE,
    DOCKER_DIR,
    DOCKERFILE,
    INSTANCE_FILE,
    WEBSERVER_SERVICE,
    WORKSPACE_FILE,
    ServiceProcess,
    compose,
    dockerfile_cmd,
    healthcheck_argv,
    load_yaml,
    native_argv,
)
from imaging_assets_tests.servers import free_port

DAGSTER_SERVICES = (CODE_SERVICE, WEBSERVER_SERVICE, DAEMON_SERVICE)
ENV_EXAMPLE = DOCKER_DIR / ".env.example"


def _tool(name: str) -> str:
    found = Path(sys.executable).with_name(name)
    if not found.exists():
        pytest.fail(f"{name} missing beside {sys.executable}: install the test extras")
    return str(found)


def _env_refs(node) -> set[str]:
    """Every `{env: NAME}` in a loaded dagster.yaml."""
    if isinstance(node, dict):
        if set(node) == {"env"}:
            return {node["env"]}
        return set().union(*(_env_refs(value) for value in node.values())) if node else set()
    if isinstance(node, list):
        return set().union(*(_env_refs(value) for value in node)) if node else set()
    return set()


def test_hadolint_passes_without_warnings():
    done = subprocess.run(
        [_tool("hadolint"), "--no-color", str(DOCKERFILE)], capture_output=True, text=True
    )
    assert done.returncode == 0 and not done.stdout.strip(), done.stdout + done.stderr


def test_compose_file_matches_the_compose_spec():
    done = subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE_FILE)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_launcher_forwards_variables_the_services_set():
    services = compose()["services"]
    instance = load_yaml(INSTANCE_FILE)
    forwarded = set(instance["run_launcher"]["config"]["env_vars"])
    for name in (WEBSERVER_SERVICE, DAEMON_SERVICE):
        missing = forwarded - set(services[name]["environment"])
        assert not missing, f"{name} does not set {sorted(missing)}, which runs need"
    # what the instance itself reads must reach every service and every run container
    needed = _env_refs(instance)
    assert needed <= forwarded, sorted(needed - forwarded)
    for name in DAGSTER_SERVICES:
        assert needed <= set(services[name]["environment"]), (name, sorted(needed))


def test_every_setting_the_code_reads_is_set_and_forwarded():
    """IMAGING_ASSETS_* names read by the package (except the demo's HOME) reach the code server,
    which evaluates sensors and schedules, and the run containers."""
    read = set()
    for path in (PROJECT_ROOT / "imaging_assets").rglob("*.py"):
        read |= set(re.findall(r"\bIMAGING_ASSETS_[A-Z][A-Z_]*[A-Z]\b", path.read_text()))
    read -= {"IMAGING_ASSETS_HOME"}
    forwarded = set(load_yaml(INSTANCE_FILE)["run_launcher"]["config"]["env_vars"])
    hint = (
        "a setting the package reads is missing from the deployment: add it to x-dagster-env "
        "in docker/docker-compose.yml (with the code's default), to run_launcher.config.env_vars "
        "in docker/dagster.yaml and to docker/.env.example"
    )
    assert read <= forwarded, (hint, sorted(read - forwarded))
    assert read <= set(compose()["services"][CODE_SERVICE]["environment"]), hint


def test_network_workspace_and_ports_agree():
    spec = compose()
    services = spec["services"]
    network = load_yaml(INSTANCE_FILE)["run_launcher"]["config"]["network"]
    names = {key: value.get("name", key) for key, value in spec["networks"].items()}
    assert network in names.values()
    (network_key,) = [key for key, name in names.items() if name == network]
    for name, service in services.items():
        assert network_key in service["networks"], f"{name} is not on {network}"

    (entry,) = load_yaml(WORKSPACE_FILE)["load_from"]
    grpc = entry["grpc_server"]
    assert grpc["host"] == CODE_SERVICE and CODE_SERVICE in services
    assert grpc["location_name"] == "imaging_assets"
    cmd = dockerfile_cmd()
    assert cmd[cmd.index("-p") + 1] == str(grpc["port"]) == str(CODE_PORT)
    health = healthcheck_argv(services[CODE_SERVICE])
    assert health[:3] == ["dagster", "api", "grpc-health-check"]
    assert health[health.index("-p") + 1] == str(grpc["port"])
    # the image's dagster.yaml and workspace.yaml are where webserver and daemon look
    for name in (WEBSERVER_SERVICE, DAEMON_SERVICE):
        command = services[name]["command"]
        assert command[command.index("-w") + 1] == "/opt/dagster/dagster_home/workspace.yaml"
    assert "DAGSTER_HOME=/opt/dagster/dagster_home" in DOCKERFILE.read_text()
    # the run containers are the code server's image
    assert (
        services[CODE_SERVICE]["environment"]["DAGSTER_CURRENT_IMAGE"]
        == services[CODE_SERVICE]["image"]
    )


def test_services_start_in_health_order():
    services = compose()["services"]
    for name, service in services.items():
        assert "healthcheck" in service or name == DAEMON_SERVICE, name
        for dependency, condition in service.get("depends_on", {}).items():
            assert condition["condition"] == "service_healthy", (name, dependency)
            assert "healthcheck" in services[dependency]
    for name in (WEBSERVER_SERVICE, DAEMON_SERVICE):
        assert {"postgres", CODE_SERVICE} <= set(services[name]["depends_on"])
    assert {"postgres", "s3"} <= set(services[CODE_SERVICE]["depends_on"])


def test_env_example_lists_every_variable_without_secrets():
    text = COMPOSE_FILE.read_text()
    used = set(re.findall(r"(?<!\$)\$\{([A-Z0-9_]+)", text))
    example = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            example[key.strip()] = value.strip()
    assert used <= set(example), sorted(used - set(example))
    assert set(example) <= used, sorted(set(example) - used)
    for key, value in example.items():
        if re.search(r"PASSWORD|SECRET|ACCESS_KEY", key):
            assert value.startswith("change-me"), key
    assert "docker/.env" in (PROJECT_ROOT / ".gitignore").read_text().splitlines()


@pytest.mark.slow
def test_dockerfile_cmd_runs_natively_and_answers_the_health_check(tmp_path):
    port = free_port()
    argv = native_argv(dockerfile_cmd(), {CODE_PORT: port})
    assert "127.0.0.1" in argv and "0.0.0.0" not in argv
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "IMAGING_ASSETS_"))}
    server = ServiceProcess(CODE_SERVICE, argv, env, tmp_path, tmp_path).start()
    health = native_argv(healthcheck_argv(compose()["services"][CODE_SERVICE]), {CODE_PORT: port})
    try:
        deadline = time.monotonic() + 120
        while True:
            done = subprocess.run(health, env=env, capture_output=True, text=True, timeout=60)
            if done.returncode == 0:
                break
            assert server.alive, server.log_tail()
            assert time.monotonic() < deadline, server.log_tail()
            time.sleep(0.5)
        assert "successful" in done.stdout.lower() + done.stderr.lower()
    finally:
        assert server.stop(timeout_s=20) is not None
