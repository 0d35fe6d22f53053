"""A run killed with SIGKILL while it holds a plate's lease never blocks the plate's next run.

The run is a real `dagster asset materialize` process (no daemon, as a user on a laptop would run
it). It is stopped deterministically inside site_images, with the lease held, by a raw object that
is a FIFO: reading it blocks like a stalled mount. SIGKILL then leaves the lease behind exactly
as an OOM kill would.
"""

from __future__ import annotations

import time

import lance
import pytest

from imaging_assets.demo.gallery import generate_gallery
from imaging_assets_tests.killed_runs import (
    MODULE,
    dagster,
    kill_site_images_holding_the_lease,
    laptop_env,
    prepare_plate,
)

PLATE = "source_4__BR00121001"


@pytest.mark.slow
def test_a_rerun_after_sigkill_mid_write_succeeds_within_two_minutes(tmp_path):
    gallery = generate_gallery(tmp_path / "gallery", preset="tiny", seed=0)
    env, _, lake = laptop_env(tmp_path, gallery)
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
