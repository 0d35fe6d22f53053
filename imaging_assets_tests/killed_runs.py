"""A plate run killed with SIGKILL while it holds the plate's lease, as an OOM kill leaves it.

The run is a real `dagster asset materialize` process. It stops deterministically inside
site_images, lease held, on a raw TIFF replaced by a FIFO (reading it blocks like a stalled
mount); then the whole process group is killed and the TIFF put back.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from imaging_assets_tests.conftest import PROJECT_ROOT

DAGSTER = str(Path(sys.executable).with_name("dagster"))
MODULE = ("-m", "imaging_assets.definitions")


def dagster(env: dict, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """The `dagster` CLI on the project's definitions' folder, output captured."""
    return subprocess.run(
        [DAGSTER, *args], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout
    )


def laptop_env(tmp_path: Path, gallery) -> tuple[dict, Path, Path]:
    """(environment, DAGSTER_HOME, lake) of a laptop: the shipped dagster.yaml, the gallery as
    source and metadata, a local lake, and none of the caller's project variables."""
    home = tmp_path / "dagster_home"
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
    return env, home, lake


def prepare_plate(env: dict, plate: str) -> None:
    """metadata_job, then load_data and sampled_sites of the plate: what site_images reads."""
    done = dagster(env, "job", "execute", *MODULE, "-j", "metadata_job")
    assert done.returncode == 0, done.stderr[-3000:]
    done = dagster(
        env, "asset", "materialize", *MODULE, "--select", "load_data,sampled_sites",
        "--partition", plate,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]


def kill_site_images_holding_the_lease(
    env: dict, gallery, lake: Path, plate: str, settle_s: float = 1.0, batch: bool = False
) -> None:
    """Start site_images of the plate, wait until it holds the lease and blocks on the FIFO,
    SIGKILL its process group, and restore the TIFF it was reading. With `batch`, the run is a
    plate_batch_job run of the plate (plate_job as its child run) instead."""
    images = gallery.source_root / "source_4" / "images" / "2021_05_31_Batch2" / "images"
    tiff = sorted(images.rglob("*.tiff"))[0]
    original = tiff.read_bytes()
    tiff.unlink()
    os.mkfifo(tiff)
    command = [
        DAGSTER, "asset", "materialize", *MODULE, "--select", "site_images", "--partition", plate,
    ]  # fmt: skip
    if batch:
        config = lake.parent / "batch.yaml"
        config.write_text(f"ops: {{run_partitions: {{config: {{partitions: [{plate}]}}}}}}\n")
        command = [DAGSTER, "job", "execute", *MODULE, "-j", "plate_batch_job", "-c", str(config)]
    run = subprocess.Popen(
        command,
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    leases = lake / "_leases" / "site_images" / plate
    deadline = time.monotonic() + 180
    while not (leases.is_dir() and any(leases.iterdir())):
        assert run.poll() is None, "the run ended before it took the lease"
        assert time.monotonic() < deadline, "the run never took the lease"
        time.sleep(0.1)
    time.sleep(settle_s)  # blocked on the FIFO, inside the write
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    tiff.unlink()
    tiff.write_bytes(original)
