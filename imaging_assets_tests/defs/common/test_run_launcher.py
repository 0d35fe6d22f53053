"""A run killed with SIGKILL never holds its plate: run monitoring, with the shipped dagster.yaml
(LocalRunLauncher), marks it failed, and a backfill of the plate then runs to success."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster import DagsterInstance, DagsterRunStatus

from imaging_assets.demo.gallery import generate_gallery
from imaging_assets_tests.conftest import PROJECT_ROOT
from imaging_assets_tests.servers import BACKFILL_STATUS, LAUNCH_BACKFILL, DagsterDev

PLATE = "source_4__BR00121001"
DAGSTER = str(Path(sys.executable).with_name("dagster"))
MODULE = ("-m", "imaging_assets.definitions")


def _dagster(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [DAGSTER, *args], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
def test_a_killed_run_is_marked_failed_and_a_backfill_of_its_plate_succeeds(tmp_path):
    gallery = generate_gallery(tmp_path / "gallery", preset="tiny", seed=0)
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")  # as shipped
    lake = tmp_path / "lake"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "IMAGING_"))},
        "DAGSTER_HOME": str(home),
        "IMAGING_ASSETS_SOURCE_ROOT": str(gallery.source_root),
        "IMAGING_ASSETS_METADATA_ROOT": str(gallery.metadata_root),
        "IMAGING_ASSETS_LAKE": str(lake),
    }
    assert _dagster(env, "job", "execute", *MODULE, "-j", "metadata_job").returncode == 0
    done = _dagster(
        env, "asset", "materialize", *MODULE, "--select", "load_data,sampled_sites",
        "--partition", PLATE,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]

    # a run of the plate, blocked reading one raw TIFF (a FIFO), killed with its lease held
    images = gallery.source_root / "source_4" / "images" / "2021_05_31_Batch2" / "images"
    tiff = sorted(images.rglob("*.tiff"))[0]
    original = tiff.read_bytes()
    tiff.unlink()
    os.mkfifo(tiff)
    run = subprocess.Popen(
        [DAGSTER, "asset", "materialize", *MODULE, "--select", "site_images", "--partition", PLATE],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    leases = lake / "_leases" / "site_images" / PLATE
    deadline = time.monotonic() + 180
    while not (leases.is_dir() and any(leases.iterdir())):
        assert run.poll() is None and time.monotonic() < deadline, "the run never took the lease"
        time.sleep(0.2)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    tiff.unlink()
    tiff.write_bytes(original)
    os.environ["DAGSTER_HOME"] = str(home)
    try:
        with DagsterInstance.get() as instance:
            [zombie] = [r for r in instance.get_runs() if r.status == DagsterRunStatus.STARTED]

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
            assert instance.get_run_by_id(zombie.run_id).status == DagsterRunStatus.FAILURE
            backfill_runs = [r for r in instance.get_runs() if r.run_id != zombie.run_id]
            assert any(
                r.status == DagsterRunStatus.SUCCESS and r.tags.get("dagster/partition") == PLATE
                for r in backfill_runs
            )
    finally:
        os.environ.pop("DAGSTER_HOME", None)
