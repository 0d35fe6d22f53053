"""docker/k8s/ checked without a cluster or Helm (neither exists here):

1. values.yaml (Dagster's official chart) parses, holds the required settings and agrees with the
   image, the manifests and docker/dagster.yaml; the instance the chart renders from it,
   transcribed from the chart's templates, is docker/k8s/dagster-instance.yaml.
2. That instance passes Dagster's own config validation and its K8sRunLauncher loads
   (load_incluster_config off; the full load against Postgres is in test_instance_config.py).
3. The Job of a plate run is built by dagster-k8s's own launcher from the shipped files and the
   run's tags, captured where it would go to the API server, and is a valid Kubernetes Job.
4. The ConfigMap and Secret manifests are valid and their keys agree with docker/.env.example.
5. compose, .env.example and the K8s files agree; removing the bundled store as docs/deploy.md
   says leaves nothing pointing at it.
"""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import yaml

from imaging_assets_tests.conftest import PROJECT_ROOT
from imaging_assets_tests.deployment.stack import (
    CODE_SERVICE,
    DOCKER_DIR,
    DOCKERFILE,
    INSTANCE_FILE,
    K8S_INSTANCE_FILE,
    compose,
    dockerfile_cmd,
    load_yaml,
)
from imaging_assets_tests.deployment.test_static import (
    BUNDLED_STORE,
    DAGSTER_SERVICES,
    compose_env,
    env_example,
)

pytest.importorskip("dagster_k8s")
kubernetes = pytest.importorskip("kubernetes")

K8S_DIR = DOCKER_DIR / "k8s"
VALUES_FILE = K8S_DIR / "values.yaml"
ENV_CONFIGMAP_FILE = K8S_DIR / "env-configmap.yaml"
SECRETS_FILE = K8S_DIR / "secrets.yaml"
BIG_PLATE_TAGS_FILE = K8S_DIR / "big-plate-tags.json"
DEPLOY_DOC = PROJECT_ROOT / "docs" / "deploy.md"
RELEASE = NAMESPACE = "imaging-assets"
PG_PASSWORD_KEY = "postgresql-password"  # the chart's (and dagster-k8s's) key name

# .env.example names that have no ConfigMap or Secret key, and where they went on Kubernetes
# (each one must be in docs/deploy.md's table).
COMPOSE_ONLY = {
    "IMAGING_ASSETS_IMAGE",  # values.yaml: the user deployment's image
    "AWS_ENDPOINT_URL",  # the ConfigMap spells out every endpoint
    "SEAWEEDFS_BUCKETS",
    "SEAWEEDFS_VERSION",
    "DOCKER_GID",
    "WEBSERVER_HOST_PORT",
    "S3_HOST_PORT",
}
HELM_VALUES = {
    "DAGSTER_POSTGRES_USER": ("postgresql", "postgresqlUsername"),
    "DAGSTER_POSTGRES_DB": ("postgresql", "postgresqlDatabase"),
}
# what the compose services get that the chart provides itself on Kubernetes
CHART_PROVIDED = {
    "DAGSTER_POSTGRES_HOST",
    "DAGSTER_POSTGRES_PORT",
    "DAGSTER_POSTGRES_USER",
    "DAGSTER_POSTGRES_DB",
    "DAGSTER_POSTGRES_PASSWORD",
}
LABEL_NAME = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?")
LABEL_PREFIX = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def values() -> dict:
    return load_yaml(VALUES_FILE)


def manifests(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def env_configmap() -> dict:
    (configmap,) = manifests(ENV_CONFIGMAP_FILE)
    return configmap


def secrets() -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in manifests(SECRETS_FILE)}


def user_deployment() -> dict:
    (deployment,) = values()["dagster-user-deployments"]["deployments"]
    return deployment


class _Body:
    def __init__(self, data: str) -> None:
        self.data = data


def k8s_model(manifest: dict, model: str):
    """A manifest through the Kubernetes client's own deserializer: unknown fields are dropped and
    client-side validation refuses missing required ones."""
    return kubernetes.client.ApiClient().deserialize(_Body(json.dumps(manifest)), model)


def chart_instance(helm_values: dict, release: str = RELEASE, namespace: str = NAMESPACE) -> dict:
    """The dagster.yaml of the chart's configmap-instance.yaml for these values, transcribed from
    the chart's templates (helpers/instance/*.tpl, _helpers.tpl) for the settings this deployment
    uses; test_values_use_only_transcribed_instance_settings refuses any other."""
    fullname = release if "dagster" in release else f"{release}-dagster"
    chart_global = helm_values["global"]
    pg = helm_values["postgresql"]
    assert not pg["enabled"], "the transcription covers an external Postgres only"
    postgres_db = {
        "username": pg["postgresqlUsername"],
        "password": {"env": "DAGSTER_PG_PASSWORD"},
        "hostname": pg["postgresqlHost"],
        "db_name": pg["postgresqlDatabase"],
        "port": pg["service"]["port"],
        "params": pg.get("postgresqlParams", {}),
    }
    if pg.get("postgresqlScheme"):
        postgres_db["scheme"] = pg["postgresqlScheme"]

    def storage(module: str, name: str) -> dict:
        return {"module": module, "class": name, "config": {"postgres_db": dict(postgres_db)}}

    # the chart's CustomRunLauncher: module, class and config as given (helpers/instance/
    # _run-launcher.tpl, "dagsterYaml.runLauncher.custom"); the names the K8sRunLauncher template
    # would derive from the release must be the ones the values write out
    assert helm_values["runLauncher"]["type"] == "CustomRunLauncher"
    custom = helm_values["runLauncher"]["config"]["customRunLauncher"]
    launcher = custom["config"]
    assert launcher["job_namespace"] == namespace
    assert launcher["service_account_name"] == (
        chart_global.get("serviceAccountName")
        or helm_values.get("serviceAccount", {}).get("name")
        or fullname
    )
    assert launcher["dagster_home"] == chart_global["dagsterHome"]
    assert launcher["instance_config_map"] == f"{fullname}-instance"
    assert launcher["postgres_password_secret"] == (
        chart_global.get("postgresqlSecretName") or f"{fullname}-postgresql-secret"
    )

    daemon = helm_values["dagsterDaemon"]
    assert daemon["enabled"] and daemon["runCoordinator"]["enabled"]
    assert daemon["runCoordinator"]["type"] == "QueuedRunCoordinator"
    queued = daemon["runCoordinator"]["config"]["queuedRunCoordinator"]
    coordinator = {
        snake: queued[camel]
        for camel, snake in (
            ("dequeueIntervalSeconds", "dequeue_interval_seconds"),
            ("dequeueUseThreads", "dequeue_use_threads"),
            ("dequeueNumWorkers", "dequeue_num_workers"),
        )
        if queued.get(camel)
    }
    monitoring = daemon["runMonitoring"]
    assert monitoring["enabled"]

    assert helm_values["computeLogManager"]["type"] == "S3ComputeLogManager"
    s3_logs = helm_values["computeLogManager"]["config"]["s3ComputeLogManager"]
    compute_logs = {"bucket": s3_logs["bucket"]}
    if s3_logs.get("prefix"):
        compute_logs["prefix"] = s3_logs["prefix"]
    compute_logs["verify"] = s3_logs.get("verify") is not False
    if s3_logs.get("endpointUrl"):
        compute_logs["endpoint_url"] = s3_logs["endpointUrl"]
    if s3_logs.get("uploadInterval"):
        compute_logs["upload_interval"] = s3_logs["uploadInterval"]

    concurrency = helm_values["concurrency"]
    assert concurrency["enabled"]
    runs = concurrency["runs"]
    assert helm_values["scheduler"]["type"] == "DagsterDaemonScheduler"
    return {
        "scheduler": {"module": "dagster._core.scheduler", "class": "DagsterDaemonScheduler"},
        "schedule_storage": storage("dagster_postgres.schedule_storage", "PostgresScheduleStorage"),
        "run_launcher": {"module": custom["module"], "class": custom["class"], "config": launcher},
        "run_storage": storage("dagster_postgres.run_storage", "PostgresRunStorage"),
        "event_log_storage": storage("dagster_postgres.event_log", "PostgresEventLogStorage"),
        "run_coordinator": {
            "module": "dagster._core.run_coordinator",
            "class": "QueuedRunCoordinator",
            "config": coordinator,
        },
        "compute_logs": {
            "module": "dagster_aws.s3.compute_log_manager",
            "class": "S3ComputeLogManager",
            "config": compute_logs,
        },
        "run_monitoring": {
            "enabled": True,
            "start_timeout_seconds": monitoring["startTimeoutSeconds"],
            "max_resume_run_attempts": monitoring["maxResumeRunAttempts"],
            "poll_interval_seconds": monitoring["pollIntervalSeconds"],
            "free_slots_after_run_end_seconds": monitoring["freeSlotsAfterRunEndSeconds"],
        },
        "telemetry": {"enabled": helm_values["telemetry"]["enabled"]},
        "concurrency": {
            "pools": {"default_limit": concurrency["pools"]["defaultLimit"]},
            "runs": {
                "max_concurrent_runs": runs["maxConcurrentRuns"],
                "tag_concurrency_limits": [
                    {"key": limit["key"], "value": limit["value"], "limit": limit["limit"]}
                    for limit in runs["tagConcurrencyLimits"]
                ],
            },
        },
    }


# (1) the values file ------------------------------------------------------------------------


def test_values_use_only_transcribed_instance_settings():
    """Every instance-shaping value is one chart_instance reads: a new one must be transcribed (and
    docker/k8s/dagster-instance.yaml updated) before the tests can vouch for it."""
    transcribed = {
        "global": {"dagsterHome", "postgresqlSecretName"},
        "postgresql": {
            "enabled",
            "postgresqlHost",
            "postgresqlUsername",
            "postgresqlDatabase",
            "postgresqlParams",
            "postgresqlScheme",
            "service",
        },
        "runLauncher.config.customRunLauncher": {"module", "class", "config"},
        "dagsterDaemon.runCoordinator.config.queuedRunCoordinator": {
            "dequeueIntervalSeconds",
            "dequeueUseThreads",
            "dequeueNumWorkers",
        },
        "dagsterDaemon.runMonitoring": {
            "enabled",
            "startTimeoutSeconds",
            "pollIntervalSeconds",
            "maxResumeRunAttempts",
            "freeSlotsAfterRunEndSeconds",
        },
        "concurrency": {"enabled", "pools", "runs"},
        "concurrency.pools": {"defaultLimit"},
        "concurrency.runs": {"maxConcurrentRuns", "tagConcurrencyLimits"},
        "computeLogManager.config.s3ComputeLogManager": {
            "bucket",
            "prefix",
            "endpointUrl",
            "uploadInterval",
        },
    }
    helm_values = values()
    for path, keys in transcribed.items():
        node = helm_values
        for part in path.split("."):
            node = node[part]
        assert set(node) <= keys, (path, sorted(set(node) - keys))
    assert set(helm_values["runLauncher"]["config"]) == {"customRunLauncher"}


def test_the_instance_file_is_what_the_chart_renders_from_the_values():
    assert load_yaml(K8S_INSTANCE_FILE) == chart_instance(values())
    # and the doc says how to compare it with the real rendering
    doc = DEPLOY_DOC.read_text()
    assert "helm template imaging-assets dagster/dagster" in doc
    assert "docker/k8s/dagster-instance.yaml" in doc


def test_values_carry_the_docker_instance_queue_limits_and_monitoring():
    docker = load_yaml(INSTANCE_FILE)
    k8s = load_yaml(K8S_INSTANCE_FILE)
    hint = "docker/dagster.yaml and docker/k8s/values.yaml must keep the same limits"
    assert k8s["concurrency"] == docker["concurrency"], hint
    assert k8s["run_monitoring"] == docker["run_monitoring"], hint
    assert k8s["run_coordinator"] == docker["run_coordinator"], hint
    assert k8s["telemetry"] == docker["telemetry"] == {"enabled": False}
    assert k8s["scheduler"] == docker["scheduler"]
    # the same compute-log settings, read from the same variables
    docker_logs = docker["compute_logs"]
    assert {k: v for k, v in k8s["compute_logs"].items() if k != "config"} == {
        k: v for k, v in docker_logs.items() if k != "config"
    }
    assert {k: v for k, v in k8s["compute_logs"]["config"].items() if k != "verify"} == docker_logs[
        "config"
    ]
    # the same Postgres driver (SQLAlchemy 2.1 would pick psycopg 3 otherwise)
    scheme = docker["storage"]["postgres"]["postgres_db"]["scheme"]
    for name in ("run_storage", "event_log_storage", "schedule_storage"):
        assert k8s[name]["config"]["postgres_db"]["scheme"] == scheme


def test_user_deployment_runs_the_image_as_built():
    deployment = user_deployment()
    # the chart's container args for dagsterApiGrpcArgs (deployment-user.yaml)
    args = ["dagster", "api", "grpc", "-h", "0.0.0.0", "-p", str(deployment["port"])]
    assert args + deployment["dagsterApiGrpcArgs"] == dockerfile_cmd()
    assert deployment["image"]["repository"] and deployment["image"]["tag"] != "latest"
    assert deployment["image"]["pullPolicy"] == "IfNotPresent"
    # runs take only the launcher's settings, so the plate-run resources cannot be overridden
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": False}
    assert "resources" not in deployment
    home = re.search(r"DAGSTER_HOME=(\S+)", DOCKERFILE.read_text()).group(1)
    assert values()["global"]["dagsterHome"] == home


def test_every_pod_gets_the_env_configmap_and_the_secret():
    helm_values = values()
    configmap = env_configmap()["metadata"]["name"]
    env_secret = "imaging-assets-secrets"
    assert env_secret in secrets()
    for owner in (
        user_deployment(),
        helm_values["dagsterWebserver"],
        helm_values["dagsterDaemon"],
    ):
        assert owner["envConfigMaps"] == [{"name": configmap}]
        assert owner["envSecrets"] == [{"name": env_secret}]
    run_pods = helm_values["runLauncher"]["config"]["customRunLauncher"]["config"]
    assert run_pods["env_config_maps"] == [configmap]
    assert run_pods["env_secrets"] == [env_secret]
    # the Postgres password: a Secret of ours with the chart's key, never generated from values
    assert helm_values["generatePostgresqlPasswordSecret"] is False
    assert "postgresqlPassword" not in helm_values["postgresql"]
    postgres = secrets()[helm_values["global"]["postgresqlSecretName"]]
    assert set(postgres["stringData"]) == {PG_PASSWORD_KEY}


def test_plate_run_resources_and_runtime_settings():
    launcher = values()["runLauncher"]["config"]["customRunLauncher"]["config"]
    assert launcher["resources"] == {
        "requests": {"cpu": "1", "memory": "4Gi"},
        "limits": {"memory": "8Gi"},
    }
    assert launcher["load_incluster_config"] is True
    assert "image" not in launcher  # runs use the user deployment's image
    monitoring = values()["dagsterDaemon"]["runMonitoring"]
    assert monitoring["enabled"] and monitoring["maxResumeRunAttempts"] == 0
    assert env_configmap()["data"]["MALLOC_ARENA_MAX"] == "2"


# (2) the instance loads ---------------------------------------------------------------------

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
def instance_env(monkeypatch):
    """The variables the K8s instance reads, as the chart and the env ConfigMap set them."""
    for key, value in env_configmap()["data"].items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("DAGSTER_PG_PASSWORD", "not-a-password")


@pytest.fixture()
def kubeconfig(tmp_path) -> str:
    """No cluster here: a kubeconfig that parses but leads nowhere (nothing is sent to it)."""
    path = tmp_path / "kubeconfig"
    path.write_text(FAKE_KUBECONFIG)
    return str(path)


def launcher_config(kubeconfig: str) -> dict:
    config = copy.deepcopy(load_yaml(K8S_INSTANCE_FILE)["run_launcher"]["config"])
    config["load_incluster_config"] = False
    config["kubeconfig_file"] = kubeconfig
    return config


def test_k8s_instance_passes_dagsters_config_validation(tmp_path, instance_env):
    from dagster._core.instance.ref import InstanceRef

    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(K8S_INSTANCE_FILE.read_text())
    # the instance schema, including the check that run limits are not set twice
    ref = InstanceRef.from_dir(str(home))
    assert ref.settings["concurrency"] == load_yaml(K8S_INSTANCE_FILE)["concurrency"]
    assert ref.settings["run_monitoring"]["free_slots_after_run_end_seconds"] == 300
    assert ref.settings["telemetry"] == {"enabled": False}
    # every class's own config schema
    from dagster._config import process_config, resolve_to_config_type
    from dagster._serdes.config_class import class_from_code_pointer

    for data in (
        ref.run_storage_data,
        ref.event_storage_data,
        ref.schedule_storage_data,
        ref.compute_logs_data,
        ref.run_coordinator_data,
        ref.run_launcher_data,
        ref.scheduler_data,
    ):
        klass = class_from_code_pointer(data.module_name, data.class_name)
        result = process_config(resolve_to_config_type(klass.config_type()), data.config_dict)
        assert result.success, (data.class_name, result.errors)
    # these need no server to be built
    assert type(ref.compute_logs_data.rehydrate()).__name__ == "S3ComputeLogManager"
    assert type(ref.run_coordinator_data.rehydrate()).__name__ == "QueuedRunCoordinator"


def test_k8s_run_launcher_loads_from_the_instance(kubeconfig):
    from dagster._serdes.config_class import ConfigurableClassData
    from dagster_k8s import K8sRunLauncher

    shipped = load_yaml(K8S_INSTANCE_FILE)["run_launcher"]
    data = ConfigurableClassData(
        shipped["module"], shipped["class"], yaml.safe_dump(launcher_config(kubeconfig))
    )
    launcher = data.rehydrate(as_type=K8sRunLauncher)
    # the project's subclass (batch runs' children checked through their batch run)
    assert type(launcher).__module__ == "imaging_assets.defs.common.cluster_launchers"
    config = shipped["config"]
    assert launcher.job_namespace == NAMESPACE == config["job_namespace"]
    assert launcher.instance_config_map == f"{RELEASE}-dagster-instance"
    assert launcher.service_account_name == f"{RELEASE}-dagster"
    assert list(launcher.env_config_maps) == config["env_config_maps"]
    assert list(launcher.env_secrets) == config["env_secrets"]
    assert launcher.resources == config["resources"]
    assert launcher.fail_pod_on_run_failure is True


# (3) the Job of a plate run -----------------------------------------------------------------


class _CapturingBatchApi:
    """Stands in for the API server: keeps each Job the launcher creates."""

    def __init__(self) -> None:
        self.created: list[tuple[object, str]] = []

    def create_namespaced_job(self, body, namespace, **kwargs):
        self.created.append((body, namespace))
        return body


@pytest.fixture()
def k8s_home(tmp_path, instance_env) -> Path:
    """A DAGSTER_HOME holding docker/k8s/dagster-instance.yaml (the chart's instance)."""
    home = tmp_path / "k8s_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(K8S_INSTANCE_FILE.read_text())
    return home


def plate_run_tags(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The tags a plate run from the sensor carries: plate_job's own, the sensor's, the partition."""
    from imaging_assets.defs.jump.jobs import plate_job
    from imaging_assets.defs.jump.sensors import plate_run_tags as sensor_tags

    return {
        **plate_job.tags,
        **sensor_tags("source_4", "2021_04_26_Batch1"),
        "dagster/partition": "source_4__BR00117035",
        "dagster/sensor_name": "new_plates_sensor",
        **(extra or {}),
    }


def launch_plate_run(kubeconfig: str, tags: dict[str, str], k8s_home: Path):
    """What K8sRunLauncher.launch_run sends for a plate_job run of the user deployment: the Job
    (a kubernetes.client.V1Job) and the namespace. Runs and events go to a throwaway SQLite
    instance; the instance handed to the run is the K8s one (`k8s_home`), as the daemon's is."""
    from dagster._core.code_pointer import ModuleCodePointer
    from dagster._core.instance.ref import InstanceRef
    from dagster._core.launcher import LaunchRunContext
    from dagster._core.origin import JobPythonOrigin, RepositoryPythonOrigin
    from dagster._core.remote_origin import (
        GrpcServerCodeLocationOrigin,
        RemoteJobOrigin,
        RemoteRepositoryOrigin,
    )
    from dagster._core.test_utils import create_run_for_test, instance_for_test

    from imaging_assets.defs.common.cluster_launchers import K8sRunLauncher

    deployment = user_deployment()
    # DAGSTER_CURRENT_IMAGE of the user deployment, as the chart sets it: repository:tag
    image = f"{deployment['image']['repository']}:{deployment['image']['tag']}"
    module = deployment["dagsterApiGrpcArgs"][deployment["dagsterApiGrpcArgs"].index("-m") + 1]
    code_origin = JobPythonOrigin(
        "plate_job",
        RepositoryPythonOrigin(
            executable_path="/usr/local/bin/python",
            code_pointer=ModuleCodePointer(module, "defs", working_directory=None),
            container_image=image,
            entry_point=["dagster"],
            # includeConfigInLaunchedRuns is off: the server reports no container context
            container_context=None,
        ),
    )
    remote_origin = RemoteJobOrigin(
        RemoteRepositoryOrigin(
            GrpcServerCodeLocationOrigin(
                host=deployment["name"], port=deployment["port"], location_name=deployment["name"]
            ),
            "__repository__",
        ),
        "plate_job",
    )
    api = _CapturingBatchApi()
    launcher = K8sRunLauncher(**launcher_config(kubeconfig), k8s_client_batch_api=api)
    with instance_for_test() as instance:
        instance.get_ref = lambda: InstanceRef.from_dir(str(k8s_home))
        launcher.register_instance(instance)
        run = create_run_for_test(
            instance,
            job_name="plate_job",
            tags=tags,
            job_code_origin=code_origin,
            remote_job_origin=remote_origin,
        )
        launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
        (created,) = api.created
        return created, run, image


def _valid_label(key: str, value: str) -> bool:
    prefix, _, name = key.rpartition("/")
    return (
        (not prefix or (len(prefix) <= 253 and LABEL_PREFIX.fullmatch(prefix) is not None))
        and 0 < len(name) <= 63
        and LABEL_NAME.fullmatch(name) is not None
        and len(value) <= 63
        and LABEL_NAME.fullmatch(value) is not None
    )


def check_valid_job(job) -> dict:
    """The Job as the API server would receive it (camelCase JSON), through the Kubernetes
    client's models and back, plus the name, label, env and quantity rules the client leaves to the
    server."""
    api_client = kubernetes.client.ApiClient()
    body = api_client.sanitize_for_serialization(job)
    again = k8s_model(body, "V1Job")
    assert api_client.sanitize_for_serialization(again) == body
    assert body["apiVersion"] == "batch/v1" and body["kind"] == "Job"
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", body["metadata"]["name"])
    assert len(body["metadata"]["name"]) <= 63
    template = body["spec"]["template"]
    for labels in (body["metadata"]["labels"], template["metadata"]["labels"]):
        bad = {key: value for key, value in labels.items() if not _valid_label(key, value)}
        assert not bad, bad
    (container,) = template["spec"]["containers"]
    for variable in container["env"]:
        assert ENV_NAME.fullmatch(variable["name"]), variable
    for group in container["resources"].values():
        for quantity in group.values():
            kubernetes.utils.parse_quantity(quantity)
    mounted = {mount["name"] for mount in container["volumeMounts"]}
    assert mounted <= {volume["name"] for volume in template["spec"]["volumes"]}
    return body


def test_plate_run_job_is_built_from_the_shipped_files(kubeconfig, k8s_home):
    (job, namespace), run, image = launch_plate_run(kubeconfig, plate_run_tags(), k8s_home)
    body = check_valid_job(job)
    assert namespace == NAMESPACE
    pod = body["spec"]["template"]["spec"]
    (container,) = pod["containers"]

    assert container["image"] == image
    assert container["imagePullPolicy"] == "IfNotPresent"
    assert container["args"][:3] == ["dagster", "api", "execute_run"]
    assert pod["serviceAccountName"] == f"{RELEASE}-dagster"
    assert pod["restartPolicy"] == "Never" and body["spec"]["backoffLimit"] == 0

    # settings from the env ConfigMap, keys from the Secret, the Postgres password from its own
    assert container["envFrom"] == [
        {"configMapRef": {"name": env_configmap()["metadata"]["name"]}},
        {"secretRef": {"name": "imaging-assets-secrets"}},
    ]
    env = {variable["name"]: variable for variable in container["env"]}
    assert env["DAGSTER_HOME"]["value"] == values()["global"]["dagsterHome"]
    assert env["DAGSTER_RUN_JOB_NAME"]["value"] == "plate_job"
    assert env["DAGSTER_PG_PASSWORD"]["valueFrom"] == {
        "secretKeyRef": {"name": "imaging-assets-postgresql", "key": PG_PASSWORD_KEY}
    }
    assert PG_PASSWORD_KEY in secrets()["imaging-assets-postgresql"]["stringData"]

    # the instance travels in the arguments (the launcher's own: the chart's), so a run never
    # reads the compose instance baked into the image at DAGSTER_HOME
    from dagster._grpc.types import ExecuteRunArgs
    from dagster_shared.serdes import deserialize_value

    handed = deserialize_value(container["args"][3], ExecuteRunArgs)
    assert handed.run_id == run.run_id
    assert handed.set_exit_code_on_failure is True  # failPodOnRunFailure
    ref = handed.instance_ref
    assert ref.run_launcher_data.class_name == "K8sRunLauncher"
    assert ref.compute_logs_data.class_name == "S3ComputeLogManager"
    assert ref.run_storage_data.class_name == "PostgresRunStorage"
    assert yaml.safe_load(ref.run_storage_data.config_yaml)["postgres_db"]["password"] == {
        "env": "DAGSTER_PG_PASSWORD"
    }

    assert container["resources"] == {
        "requests": {"cpu": "1", "memory": "4Gi"},
        "limits": {"memory": "8Gi"},
    }
    labels = body["metadata"]["labels"]
    assert labels["dagster/job"] == "plate_job"
    assert labels["dagster/run-id"] == run.run_id
    assert labels["dagster/code-location"] == user_deployment()["name"]
    assert labels["app.kubernetes.io/component"] == "run_worker"
    assert body["metadata"]["name"] == f"dagster-run-{run.run_id}"


def test_big_plate_tags_replace_the_resources_and_nothing_else(kubeconfig, k8s_home):
    tags = json.loads(BIG_PLATE_TAGS_FILE.read_text())
    # `dagster job backfill --tags` takes a JSON object of strings only
    assert all(isinstance(value, str) for value in tags.values())
    (default, _), _, _ = launch_plate_run(kubeconfig, plate_run_tags(), k8s_home)
    (big, _), _, _ = launch_plate_run(kubeconfig, plate_run_tags(tags), k8s_home)
    default_body, big_body = check_valid_job(default), check_valid_job(big)
    (default_container,) = default_body["spec"]["template"]["spec"]["containers"]
    (big_container,) = big_body["spec"]["template"]["spec"]["containers"]
    assert big_container["resources"] == {
        "requests": {"cpu": "2", "memory": "8Gi"},
        "limits": {"memory": "16Gi"},
    }
    for key in ("image", "envFrom", "env"):
        assert big_container[key] == default_container[key], key
    assert kubernetes.utils.parse_quantity(
        big_container["resources"]["limits"]["memory"]
    ) > kubernetes.utils.parse_quantity(default_container["resources"]["limits"]["memory"])


# (4) the ConfigMap and the Secret -----------------------------------------------------------


def test_manifests_are_valid_configmap_and_secrets():
    configmap = env_configmap()
    model = k8s_model(configmap, "V1ConfigMap")
    assert model.kind == "ConfigMap" and model.metadata.namespace == NAMESPACE
    assert all(isinstance(value, str) for value in configmap["data"].values())
    for key in configmap["data"]:
        assert ENV_NAME.fullmatch(key), key  # envFrom skips keys that are not variable names
    for name, secret in secrets().items():
        model = k8s_model(secret, "V1Secret")
        assert model.kind == "Secret" and model.metadata.namespace == NAMESPACE, name
        # a template: placeholders only, and the reason is said in the file
        assert all(value.startswith("change-me") for value in secret["stringData"].values())
    assert "never go in git" in SECRETS_FILE.read_text()
    assert "kubectl create secret" in SECRETS_FILE.read_text()
    env_keys = secrets()["imaging-assets-secrets"]["stringData"]
    assert set(env_keys) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}


def test_every_env_example_variable_has_a_place_on_kubernetes():
    example, commented = env_example()
    configmap = set(env_configmap()["data"])
    secret = set(secrets()["imaging-assets-secrets"]["stringData"])
    placed = configmap | secret | COMPOSE_ONLY | set(HELM_VALUES) | {"DAGSTER_POSTGRES_PASSWORD"}
    listed = set(example) | commented
    assert listed <= placed, sorted(listed - placed)
    assert listed >= COMPOSE_ONLY | set(HELM_VALUES)
    helm_values = values()
    for section, key in HELM_VALUES.values():
        assert helm_values[section][key], (section, key)
    doc = DEPLOY_DOC.read_text()
    undocumented = [
        name for name in sorted(COMPOSE_ONLY | set(HELM_VALUES)) if f"`{name}`" not in doc
    ]
    assert not undocumented, f"say in docs/deploy.md where these went: {undocumented}"


def test_k8s_pods_get_what_the_compose_services_get():
    """A container of the compose file and a pod of the chart see the same variables (Postgres'
    come from the chart), and every IMAGING_ASSETS_* setting the code reads is in the ConfigMap."""
    compose_names = set(compose()["services"][CODE_SERVICE]["environment"]) - {
        "DAGSTER_CURRENT_IMAGE"  # set by the chart on the user deployment
    }
    k8s_names = set(env_configmap()["data"]) | set(
        secrets()["imaging-assets-secrets"]["stringData"]
    )
    assert compose_names - CHART_PROVIDED == k8s_names, sorted(
        (compose_names - CHART_PROVIDED) ^ k8s_names
    )
    read = set()
    for path in (PROJECT_ROOT / "imaging_assets").rglob("*.py"):
        read |= set(re.findall(r"\bIMAGING_ASSETS_[A-Z][A-Z_]*[A-Z]\b", path.read_text()))
    read -= {"IMAGING_ASSETS_HOME"}
    assert read <= k8s_names, sorted(read - k8s_names)
    # what the instance reads from the environment is there too
    instance_refs = set(re.findall(r"env: (\w+)", K8S_INSTANCE_FILE.read_text()))
    assert instance_refs - {"DAGSTER_PG_PASSWORD"} <= k8s_names


def test_k8s_endpoints_are_aws_or_urls():
    """On Kubernetes nothing sits between the ConfigMap and the code: an empty root endpoint is AWS
    to the code, and the compute logs' endpoint must already be a URL (boto3 refuses "")."""
    data = env_configmap()["data"]
    for name in [key for key in data if key.endswith("_ENDPOINT")]:
        assert data[name] == "" or re.fullmatch(r"https?://[^\s/]+/?", data[name]), name
    logs = data["DAGSTER_COMPUTE_LOGS_ENDPOINT"]
    assert logs == f"https://s3.{data['AWS_REGION']}.amazonaws.com"
    assert not [value for value in data.values() if "//s3:" in value or "s3:8333" in value]


# (5) compose, .env.example and docs/deploy.md: without the bundled store ---------------------


def _doc_section(title: str) -> str:
    doc = DEPLOY_DOC.read_text()
    match = re.search(rf"^#+ {re.escape(title)}\n(.*?)(?=^#+ )", doc, re.MULTILINE | re.DOTALL)
    assert match, f"docs/deploy.md has no section {title!r}"
    return match.group(1)


def test_removing_the_bundled_store_as_documented_leaves_nothing_pointing_at_it():
    section = _doc_section("Without the bundled store")
    (block,) = re.findall(r"```dotenv\n(.*?)```", section, re.DOTALL)
    changes = {}
    for line in block.splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            changes[key.strip()] = value.strip()
    assert changes.get("AWS_ENDPOINT_URL", "") == ""
    dotenv = {**env_example()[0], **changes}

    # the compose edits the section lists: the service, the dependency on it, its volume
    spec = copy.deepcopy(compose())
    for edit in ("`s3`", "depends_on", "`s3-data`"):
        assert edit in section, edit
    del spec["services"]["s3"]
    del spec["volumes"]["s3-data"]
    for service in spec["services"].values():
        service.get("depends_on", {}).pop("s3", None)

    for name, service in spec["services"].items():
        assert set(service.get("depends_on", {})) <= set(spec["services"]), name
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            assert source.startswith("/") or source in spec["volumes"], (name, mount)
    buckets = set(env_example()[0]["SEAWEEDFS_BUCKETS"].split(","))
    for service in DAGSTER_SERVICES:
        env = compose_env(service, dotenv)
        stale = {
            key: value
            for key, value in env.items()
            if re.search(r"//s3[:/]", value)
            or BUNDLED_STORE in value
            or any(value == b or value.startswith(f"s3://{b}/") for b in buckets)
        }
        assert not stale, (service, stale)
        assert env["DAGSTER_COMPUTE_LOGS_ENDPOINT"].startswith("https://")
