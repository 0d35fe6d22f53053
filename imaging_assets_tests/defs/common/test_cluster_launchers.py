"""The Docker and Kubernetes launchers answer run monitoring for a batch run's children with the
batch run's health, and every other run as the stock launchers do (no engine or cluster here:
only answers that need neither are checked)."""

from __future__ import annotations

import yaml
from dagster import DagsterRunStatus, instance_for_test
from dagster._core.launcher.base import WorkerStatus
from dagster._core.test_utils import create_run_for_test

from imaging_assets.defs.common.batches import BATCH_RUN_TAG
from imaging_assets_tests.deployment.stack import INSTANCE_FILE, load_yaml
from imaging_assets_tests.deployment.test_k8s import K8S_INSTANCE_FILE, launcher_config

DOCKER = {
    "module": "imaging_assets.defs.common.cluster_launchers",
    "class": "DockerRunLauncher",
    "config": {"network": "imaging_assets_network"},
}


def _runs(instance, batch_status: DagsterRunStatus):
    batch = create_run_for_test(instance, job_name="plate_batch_job", status=batch_status)
    child = create_run_for_test(
        instance,
        job_name="plate_job",
        status=DagsterRunStatus.STARTED,
        tags={BATCH_RUN_TAG: batch.run_id, "dagster/partition": "source_1__A"},
    )
    lone = create_run_for_test(instance, job_name="plate_job", status=DagsterRunStatus.STARTED)
    return batch, child, lone


def test_the_shipped_docker_instance_names_the_batch_aware_launcher():
    shipped = load_yaml(INSTANCE_FILE)["run_launcher"]
    assert (shipped["module"], shipped["class"]) == (DOCKER["module"], DOCKER["class"])


def test_docker_children_answer_with_their_batch_run():
    with instance_for_test(overrides={"run_launcher": DOCKER}) as instance:
        launcher = instance.run_launcher
        batch, child, lone = _runs(instance, DagsterRunStatus.STARTED)
        # the batch run itself and a lone run: the stock check (no container tag here)
        stock = launcher.check_run_worker_health(batch)
        assert stock.status == WorkerStatus.NOT_FOUND
        assert launcher.check_run_worker_health(lone).status == WorkerStatus.NOT_FOUND
        # the child: its batch run's answer, not "no container of its own"
        assert launcher.check_run_worker_health(child) == stock

        ended, orphan, _ = _runs(instance, DagsterRunStatus.SUCCESS)
        verdict = launcher.check_run_worker_health(orphan)
        assert verdict.status == WorkerStatus.FAILED
        assert f"its batch run {ended.run_id} ended SUCCESS" in verdict.msg


def test_k8s_children_of_an_ended_batch_run_are_failed_without_asking_the_cluster(tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    from imaging_assets_tests.deployment.test_k8s import FAKE_KUBECONFIG

    kubeconfig.write_text(FAKE_KUBECONFIG)
    config = launcher_config(str(kubeconfig))
    launcher = {
        "module": "imaging_assets.defs.common.cluster_launchers",
        "class": "K8sRunLauncher",
        "config": yaml.safe_load(yaml.safe_dump(config)),
    }
    assert load_yaml(K8S_INSTANCE_FILE)["run_launcher"]["class"] == "K8sRunLauncher"
    with instance_for_test(overrides={"run_launcher": launcher}) as instance:
        batch, child, _ = _runs(instance, DagsterRunStatus.FAILURE)
        verdict = instance.run_launcher.check_run_worker_health(child)
        assert verdict.status == WorkerStatus.FAILED
        assert f"its batch run {batch.run_id} ended FAILURE" in verdict.msg


def test_a_child_whose_batch_run_is_gone_is_failed_by_every_launcher():
    """Without the batch-aware check the stock answer would be "no container" (Docker) or, for the
    laptop's launcher, "cannot tell from here" (RUNNING): a dead child would stay STARTED."""
    laptop = {"module": "imaging_assets.defs.common.run_launcher", "class": "LocalRunLauncher"}
    for launcher in (DOCKER, laptop):
        with instance_for_test(overrides={"run_launcher": launcher}) as instance:
            orphan = create_run_for_test(
                instance,
                job_name="plate_job",
                status=DagsterRunStatus.STARTED,
                tags={BATCH_RUN_TAG: "no-such-batch-run", "dagster/partition": "source_1__A"},
            )
            verdict = instance.run_launcher.check_run_worker_health(orphan)
            assert verdict.status == WorkerStatus.FAILED, launcher["class"]
            assert "its batch run no-such-batch-run is gone" in verdict.msg

            ended, child, _ = _runs(instance, DagsterRunStatus.CANCELED)
            verdict = instance.run_launcher.check_run_worker_health(child)
            assert verdict.status == WorkerStatus.FAILED, launcher["class"]
            assert f"its batch run {ended.run_id} ended CANCELED" in verdict.msg
