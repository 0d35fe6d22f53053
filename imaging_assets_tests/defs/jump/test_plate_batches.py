"""plate_batch_job: many plates in one run, one plate_job run each, a failing plate on its own.

Real runs on a real instance (the shipped dagster.yaml, SQLite) through the `dagster` CLI, as a
user would start them; one of three plates has a load_data file of another plate (refused).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap

import pytest
from dagster import (
    AssetKey,
    DagsterInstance,
    DagsterRunStatus,
    RunsFilter,
)
from dagster._core.storage.partition_status_cache import AssetPartitionStatus

from imaging_assets.defs.common.batches import BATCH_ROOT_TAG, BATCH_RUN_TAG
from imaging_assets.defs.jump.partitions import plates_partitions
from imaging_assets.demo.gallery import generate_gallery
from imaging_assets.jump import layout
from imaging_assets_tests.conftest import PROJECT_ROOT
from imaging_assets_tests.killed_runs import MODULE, dagster, laptop_env

GOOD = ["source_4__BR00117035", "source_4__BR00121001"]
BROKEN = "source_4__BR00117036"
BATCH = [GOOD[0], BROKEN, GOOD[1]]


def _plate_runs(instance: DagsterInstance) -> dict[str, list]:
    runs: dict[str, list] = {}
    for run in instance.get_runs(RunsFilter(job_name="plate_job")):
        runs.setdefault(run.tags["dagster/partition"], []).append(run)
    return runs


def _status(instance: DagsterInstance, key: str) -> AssetPartitionStatus | None:
    return instance.get_status_by_partition(AssetKey("site_images"), [key], plates_partitions).get(
        key
    )


@pytest.mark.slow
def test_a_failing_plate_fails_alone_and_a_reexecution_runs_only_it(tmp_path):
    gallery = generate_gallery(tmp_path / "gallery", preset="tiny", seed=0)
    env, home, _ = laptop_env(tmp_path, gallery)
    # a copy-paste slip in the bucket: BR00117036's load data is BR00117035's (load_data refuses it)
    source = gallery.source_root
    broken = source / layout.load_data_csv_key("source_4", "2021_04_26_Batch1", "BR00117036")
    original = broken.read_bytes()
    shutil.copyfile(
        source / layout.load_data_csv_key("source_4", "2021_04_26_Batch1", "BR00117035"), broken
    )
    done = dagster(env, "job", "execute", *MODULE, "-j", "metadata_job")
    assert done.returncode == 0, done.stderr[-3000:]
    config = tmp_path / "batch.yaml"
    config.write_text(
        "ops:\n  run_partitions:\n    config:\n      partitions: [" + ", ".join(BATCH) + "]\n"
    )
    batch = dagster(env, "job", "execute", *MODULE, "-j", "plate_batch_job", "-c", str(config))
    assert batch.returncode != 0  # the batch run fails, naming the plate
    assert f"1 of 3 partitions of plate_job failed: {BROKEN}" in batch.stderr

    with DagsterInstance.from_config(str(home)) as instance:
        [batch_run] = instance.get_runs(RunsFilter(job_name="plate_batch_job"))
        assert batch_run.status == DagsterRunStatus.FAILURE
        runs = _plate_runs(instance)
        assert sorted(runs) == sorted(BATCH)
        for key in GOOD:  # the neighbours: a run each, succeeded, images materialized
            [run] = runs[key]
            assert run.status == DagsterRunStatus.SUCCESS
            assert run.tags[BATCH_RUN_TAG] == batch_run.run_id
            assert "imaging_assets/source" not in run.tags  # the batch run counts for its source
            assert _status(instance, key) == AssetPartitionStatus.MATERIALIZED
        [failed] = runs[BROKEN]
        assert failed.status == DagsterRunStatus.FAILURE
        assert _status(instance, BROKEN) == AssetPartitionStatus.FAILED
        metadata = _batch_metadata(instance, batch_run.run_id)
        assert metadata["succeeded"] == 2 and metadata["failed"] == 1
        assert metadata["peak_rss_mb"] > 100  # the batch process, three plates in

    # fixed in the bucket, the batch run re-executed from failure: only the broken plate runs
    broken.write_bytes(original)
    script = textwrap.dedent(
        f"""
        from dagster import DagsterInstance, ReexecutionOptions, execute_job
        from dagster._core.definitions.reconstruct import ReconstructableRepository
        job = ReconstructableRepository.for_module(
            "imaging_assets.definitions", "defs"
        ).get_reconstructable_job("plate_batch_job")
        with DagsterInstance.get() as instance:
            options = ReexecutionOptions.from_failure("{batch_run.run_id}", instance)
            result = execute_job(job, instance, reexecution_options=options)
        raise SystemExit(0 if result.success else 1)
        """
    )
    again = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    assert again.returncode == 0, again.stderr[-3000:]
    with DagsterInstance.from_config(str(home)) as instance:
        runs = _plate_runs(instance)
        assert [len(runs[key]) for key in GOOD] == [1, 1]  # not redone
        assert len(runs[BROKEN]) == 2
        statuses = sorted(run.status.value for run in runs[BROKEN])
        assert statuses == ["FAILURE", "SUCCESS"]
        assert all(run.tags[BATCH_ROOT_TAG] == batch_run.run_id for run in runs[BROKEN])
        assert _status(instance, BROKEN) == AssetPartitionStatus.MATERIALIZED


def _batch_metadata(instance: DagsterInstance, run_id: str) -> dict:
    """The batch op's metadata (on its failure event)."""
    from dagster import DagsterEventType

    for event in instance.all_logs(run_id, of_type=DagsterEventType.STEP_FAILURE):
        data = event.dagster_event.step_failure_data.user_failure_data
        return {key: getattr(value, "value", value) for key, value in data.metadata.items()}
    raise AssertionError("the batch op did not fail")
