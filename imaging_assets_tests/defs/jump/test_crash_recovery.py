"""A run killed with SIGKILL while it holds a plate's lease never blocks the plate's next run.

The run is a real `dagster asset materialize` process (no daemon, as a user on a laptop would run
it). It is stopped deterministically inside site_images, with the lease held, by a raw object that
is a FIFO: reading it blocks like a stalled mount. SIGKILL then leaves the lease behind exactly
as an OOM kill would.
"""

from __future__ import annotations

import os
import shutil
import time

import lance
import pytest

from imaging_assets.demo.gallery import generate_gallery
from imaging_assets_tests.conftest import PROJECT_ROOT
from imaging_assets_tests.killed_runs import (
    MODULE,
    dagster,
    kill_site_images_holding_the_lease,
    prepare_plate,
)

PLATE = "source_4__BR00121001"


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
    prepare_plate(env, PLATE)
    kill_site_images_holding_the_lease(env, gallery, lake, PLATE)
    killed_at = time.monotonic()

    rerun = dagster(
        env, "asset", "materialize", *MODULE, "--select", "site_images", "--partition", PLATE,
        timeout=240,
    )  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert time.monotonic() - killed_at < 120
    assert "took the lease over" in rerun.stderr
    table = lance.dataset(str(lake / "site_images.lance")).to_table(columns=["site_key"])
    keys = table["site_key"].to_pylist()
    assert keys and len(keys) == len(set(keys))
