"""A run killed with SIGKILL while it holds a plate's lease never blocks the plate's next run.

The run is a real `dagster asset materialize` process (no daemon, as a user on a laptop would run
it). It is stopped deterministically inside site_images, with the lease held, by a raw object that
is a FIFO: reading it blocks like a stalled mount. SIGKILL then leaves the lease behind exactly
as an OOM kill would.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import lance
import pytest

from imaging_assets.demo.gallery import generate_gallery
from imaging_assets_tests.conftest import PROJECT_ROOT

PLATE = "source_4__BR00121001"
DAGSTER = str(Path(sys.executable).with_name("dagster"))


def _dagster(env: dict, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run(
        [DAGSTER, *args], env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.slow
def test_a_rerun_after_sigkill_mid_write_succeeds_within_two_minutes(tmp_path):
    gallery = generate_gallery(tmp_path / "gallery", preset="tiny", seed=0)
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    lake = tmp_path / "lake"
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "IMAGING_ASSETS_SOURCE_ROOT": str(gallery.source_root),
        "IMAGING_ASSETS_METADATA_ROOT": str(gallery.metadata_root),
        "IMAGING_ASSETS_LAKE": str(lake),
    }
    module = ("-m", "imaging_assets.definitions")
    done = _dagster(env, "job", "execute", *module, "-j", "metadata_job")
    assert done.returncode == 0, done.stderr[-3000:]
    done = _dagster(
        env,
        "asset",
        "materialize",
        *module,
        "--select",
        "load_data,sampled_sites",
        "--partition",
        PLATE,
    )
    assert done.returncode == 0, done.stderr[-3000:]

    # one raw TIFF of the plate becomes a FIFO: the run blocks reading it, lease held
    images = gallery.source_root / "source_4" / "images" / "2021_05_31_Batch2" / "images"
    tiff = sorted(images.rglob("*.tiff"))[0]
    original = tiff.read_bytes()
    tiff.unlink()
    os.mkfifo(tiff)
    run = subprocess.Popen(
        [DAGSTER, "asset", "materialize", *module, "--select", "site_images", "--partition", PLATE],
        env=env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    leases = lake / "_leases" / "site_images" / PLATE
    deadline = time.monotonic() + 180
    while not (leases.is_dir() and any(leases.iterdir())):
        assert run.poll() is None, "the run ended before it took the lease"
        assert time.monotonic() < deadline, "the run never took the lease"
        time.sleep(0.1)
    time.sleep(1.0)  # blocked on the FIFO, inside the write
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()
    killed_at = time.monotonic()
    tiff.unlink()
    tiff.write_bytes(original)

    rerun = _dagster(
        env, "asset", "materialize", *module, "--select", "site_images", "--partition", PLATE
    )
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert time.monotonic() - killed_at < 120
    assert "took the lease over" in rerun.stderr
    table = lance.dataset(str(lake / "site_images.lance")).to_table(columns=["site_key"])
    keys = table["site_key"].to_pylist()
    assert keys and len(keys) == len(set(keys))
