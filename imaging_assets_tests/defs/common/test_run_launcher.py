"""A run killed with SIGKILL never holds its plate: run monitoring, with the shipped dagster.yaml
(LocalRunLauncher), marks it failed, and a backfill of the plate then runs to success.

The killed run is a batch run (`dagster job execute` of plate_batch_job, no code server: its
health comes from its process) whose child plate run holds the plate's lease (its health is the
batch run's): both paths of the launcher's health check in one kill."""

from __future__ import annotations

import os
import time

import pytest
from dagster import DagsterInstance, DagsterRunStatus

from imaging_assets.demo.gallery import generate_gallery
from imaging_assets_tests.killed_runs import (
    kill_site_images_holding_the_lease,
    laptop_env,
    prepare_plate,
)
from imaging_assets_tests.servers import BACKFILL_STATUS, LAUNCH_BACKFILL, DagsterDev

PLATE = "source_4__BR00121001"


@pytest.mark.slow
def test_a_killed_batch_run_and_its_plate_run_are_marked_failed_and_a_backfill_succeeds(tmp_path):
    gallery = generate_gallery(tmp_path / "gallery", preset="tiny", seed=0)
    env, home, lake = laptop_env(tmp_path, gallery)
    prepare_plate(env, PLATE)
    # a run of the plate, blocked reading one raw TIFF (a FIFO), killed with its lease held
    # a batch run of the plate, whose child plate run is the one blocked
    kill_site_images_holding_the_lease(env, gallery, lake, PLATE, settle_s=0.0, batch=True)
    os.environ["DAGSTER_HOME"] = str(home)
    try:
        with DagsterInstance.get() as instance:
            zombies = [r for r in instance.get_runs() if r.status == DagsterRunStatus.STARTED]
            assert len(zombies) == 2  # the batch run and its child

        # nobody touches the instance: the daemon's run monitoring ends the dead run, the
        # backfill's run of the plate leaves the queue and takes the lease over
        with DagsterDev(env, tmp_path / "dev.log") as dev:
            launched = time.monotonic()
            answer = dev.graphql(
                LAUNCH_BACKFILL,
                {
                    "params": {
                        "partitionNames": [PLATE],
                        "assetSelection": [{"path": ["site_images"]}],
                    }
                },
            )["launchPartitionBackfill"]
            assert answer["__typename"] == "LaunchBackfillSuccess", answer
            status = None
            while time.monotonic() - launched < 120:
                status = dev.graphql(BACKFILL_STATUS, {"id": answer["backfillId"]})[
                    "partitionBackfillOrError"
                ]["status"]
                if status in ("COMPLETED", "COMPLETED_SUCCESS", "FAILED", "COMPLETED_FAILED"):
                    break
                time.sleep(2)
            elapsed = time.monotonic() - launched
            assert status in ("COMPLETED", "COMPLETED_SUCCESS"), (status, dev.log_tail())
            assert elapsed < 120, elapsed
        with DagsterInstance.get() as instance:
            for zombie in zombies:
                assert instance.get_run_by_id(zombie.run_id).status == DagsterRunStatus.FAILURE
            dead = {zombie.run_id for zombie in zombies}
            backfill_runs = [r for r in instance.get_runs() if r.run_id not in dead]
            assert any(
                r.status == DagsterRunStatus.SUCCESS and r.tags.get("dagster/partition") == PLATE
                for r in backfill_runs
            )
    finally:
        os.environ.pop("DAGSTER_HOME", None)
