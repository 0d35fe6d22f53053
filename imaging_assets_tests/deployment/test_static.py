"""Static checks of docker/: hadolint on the Dockerfile, the compose file against the Compose
spec, and the files agreeing with each other (variables, network, code server host and port,
the S3 endpoint rule). The Dockerfile's CMD is also run natively and must answer the gRPC health
check."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from imaging_assets.core.s3 import S3Settings
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
ROOT_ENDPOINTS = tuple(
    f"IMAGING_ASSETS_{role}_ENDPOINT" for role in ("SOURCE", "METADATA", "LAKE", "STACKS")
)
LOGS_ENDPOINT = "DAGSTER_COMPUTE_LOGS_ENDPOINT"
BUNDLED_STORE = "http://s3:8333"


def env_example() -> tuple[dict[str, str], set[str]]:
    """docker/.env.example: its assignments, and the names it lists commented out (`# NAME=`),
    which are meant to be left out unless needed."""
    assigned: dict[str, str] = {}
    commented: set[str] = set()
    for line in ENV_EXAMPLE.read_text().splitlines():
        line = line.strip()
        if line.startswith("#"):
            match = re.fullmatch(r"#\s*([A-Z][A-Z0-9_]*)=.*", line)
            if match:
                commented.add(match.group(1))
        elif line:
            key, _, value = line.partition("=")
            assigned[key.strip()] = value.strip()
    return assigned, commented


def interpolate(template: str, env: dict[str, str]) -> str:
    """Compose's variable interpolation, as compose-go does it: `$$`, `$VAR`, `${VAR}`,
    `${VAR-default}`, `${VAR:-default}`, `${VAR+alt}`, `${VAR:+alt}`, `${VAR?err}`,
    `${VAR:?err}`, nested in the default or alternative. An unset `${VAR}` is empty."""
    out, i = [], 0
    while i < len(template):
        if template.startswith("$$", i):
            out.append("$")
            i += 2
        elif template.startswith("${", i):
            end = _closing_brace(template, i)
            out.append(_substitute(template[i + 2 : end], env))
            i = end + 1
        elif named := re.match(r"\$([A-Za-z_][A-Za-z0-9_]*)", template[i:]):
            out.append(env.get(named.group(1), ""))
            i += named.end()
        else:
            out.append(template[i])
            i += 1
    return "".join(out)


def _closing_brace(text: str, start: int) -> int:
    depth, i = 0, start
    while i < len(text):
        if text.startswith("${", i):
            depth, i = depth + 1, i + 2
            continue
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    raise ValueError(f"unclosed ${{ in {text!r}")


def _substitute(body: str, env: dict[str, str]) -> str:
    name, operator, argument = re.fullmatch(
        r"([A-Za-z_][A-Za-z0-9_]*)(:?[-+?])?(.*)", body, re.DOTALL
    ).groups()
    value = env.get(name)
    present = value is not None and (value != "" or not (operator or "").startswith(":"))
    if not operator:
        return value or ""
    if operator.endswith("-"):
        return value if present else interpolate(argument, env)
    if operator.endswith("+"):
        return interpolate(argument, env) if present else (value or "")
    if not present:
        raise ValueError(f"required variable {name}: {interpolate(argument, env)}")
    return value


def compose_env(service: str, dotenv: dict[str, str]) -> dict[str, str]:
    """What a service's container sees, given the variables of docker/.env."""
    environment = compose()["services"][service]["environment"]
    return {key: interpolate(str(value), dotenv) for key, value in environment.items()}


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
    example, commented = env_example()
    assert used <= set(example) | commented, sorted(used - set(example) - commented)
    assert set(example) | commented <= used, sorted((set(example) | commented) - used)
    # the endpoints are left out on purpose: they follow AWS_ENDPOINT_URL (the bundled store)
    assert set(ROOT_ENDPOINTS) | {LOGS_ENDPOINT} <= commented - set(example)
    for key, value in example.items():
        if re.search(r"PASSWORD|SECRET|ACCESS_KEY", key):
            assert value.startswith("change-me"), key
    assert "docker/.env" in (PROJECT_ROOT / ".gitignore").read_text().splitlines()


def test_the_interpolation_used_here_follows_the_compose_spec():
    """The cases of the Compose spec's interpolation chapter, so the endpoint tests below read the
    compose file as docker compose would."""
    env = {"SET": "value", "EMPTY": "", "FALLBACK": "fallback"}
    cases = {
        "${SET-d}": "value",
        "${EMPTY-d}": "",
        "${UNSET-d}": "d",
        "${EMPTY:-d}": "d",
        "${SET:-d}": "value",
        "${SET+alt}": "alt",
        "${EMPTY+alt}": "alt",
        "${UNSET+alt}": "",
        "${EMPTY:+alt}": "",
        "${SET:+alt}": "alt",
        "${UNSET:-${FALLBACK}}": "fallback",
        "${UNSET:-${ALSO_UNSET:-default}}": "default",
        "a-${SET}-$SET-$$SET": "a-value-value-$SET",
    }
    assert {template: interpolate(template, env) for template in cases} == cases
    with pytest.raises(ValueError, match="UNSET"):
        interpolate("${UNSET:?set it}", env)


def _aws(region: str = "us-east-1") -> str:
    return f"https://s3.{region}.amazonaws.com"


@pytest.mark.parametrize(
    ("dotenv", "roots", "logs"),
    [
        # as shipped: everything on the bundled store
        ({"AWS_ENDPOINT_URL": BUNDLED_STORE}, BUNDLED_STORE, BUNDLED_STORE),
        # no AWS_ENDPOINT_URL (or an empty one): AWS, spelled out for the compute logs
        ({}, "", _aws()),
        ({"AWS_ENDPOINT_URL": "", "AWS_REGION": "eu-west-1"}, "", _aws("eu-west-1")),
        # set but empty: AWS, whatever AWS_ENDPOINT_URL says
        (
            {
                "AWS_ENDPOINT_URL": BUNDLED_STORE,
                **dict.fromkeys([*ROOT_ENDPOINTS, LOGS_ENDPOINT], ""),
            },
            "",
            _aws(),
        ),
        # a URL of their own wins
        (
            {
                "AWS_ENDPOINT_URL": BUNDLED_STORE,
                **dict.fromkeys([*ROOT_ENDPOINTS, LOGS_ENDPOINT], "https://other.example"),
            },
            "https://other.example",
            "https://other.example",
        ),
    ],
)
def test_compose_endpoints_follow_one_rule(dotenv, roots, logs, monkeypatch):
    base = {k: v for k, v in env_example()[0].items() if k != "AWS_ENDPOINT_URL"}
    for service in DAGSTER_SERVICES:
        env = compose_env(service, {**base, **dotenv})
        assert {name: env[name] for name in ROOT_ENDPOINTS} == dict.fromkeys(ROOT_ENDPOINTS, roots)
        # dagster-aws hands this to boto3 as is: it must be a URL
        assert env[LOGS_ENDPOINT] == logs
        # and the code reads the roots' values as the same rule says
        monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
        for name in ROOT_ENDPOINTS:
            monkeypatch.setenv(name, env[name])
        for role in ("SOURCE", "METADATA", "LAKE", "STACKS"):
            assert S3Settings.from_env(role=role).endpoint_url == (roots or None)


def test_env_example_puts_every_endpoint_on_the_bundled_store():
    for service in DAGSTER_SERVICES:
        env = compose_env(service, env_example()[0])
        endpoints = {name: env[name] for name in [*ROOT_ENDPOINTS, LOGS_ENDPOINT]}
        assert endpoints == dict.fromkeys(endpoints, BUNDLED_STORE)
        assert BUNDLED_STORE.split("//")[1].split(":")[0] in compose()["services"]


def test_runs_get_malloc_arena_max():
    """README: stack ingests keep their memory flat with MALLOC_ARENA_MAX=2, set by docker/."""
    services = compose()["services"]
    for name in DAGSTER_SERVICES:
        assert services[name]["environment"]["MALLOC_ARENA_MAX"] == "2", name
    assert "MALLOC_ARENA_MAX" in load_yaml(INSTANCE_FILE)["run_launcher"]["config"]["env_vars"]


def test_image_imports_every_class_the_instances_name():
    """The Dockerfile's build-time import check names the packages of every launcher, storage and
    log manager that docker/dagster.yaml and the Kubernetes instance load, and passes here."""
    text = DOCKERFILE.read_text()
    assert 'pip install --no-cache-dir "./[deploy]"' in text
    (check,) = re.findall(r'python -c "(import [^"]+)"', text)
    imported = {name.strip().split(".")[0] for name in check[len("import ") :].split(",")}
    named = set()
    for path in (INSTANCE_FILE, DOCKER_DIR / "k8s" / "dagster-instance.yaml"):
        for block in load_yaml(path).values():
            if isinstance(block, dict) and "module" in block:
                named.add(block["module"].split(".")[0])
    assert named - {"dagster"} <= imported, sorted(named - imported)
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    # the K8s launcher comes with the extra the image installs
    pyproject = (PROJECT_ROOT / "pyproject.toml").read_text()
    deploy = re.search(r"^deploy = \[(.*?)\]", pyproject, re.MULTILINE | re.DOTALL).group(1)
    for package in ("dagster-k8s", "dagster-postgres", "dagster-docker"):
        assert f'"{package}' in deploy, package


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
