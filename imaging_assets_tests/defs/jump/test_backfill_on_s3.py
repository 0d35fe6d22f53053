"""A backfill of every sample plate, launched as in the UI, run by `dagster dev`, on S3.

The code location is configured only through the environment (as in README), the source and
the lake live on SeaweedFS, the instance is the project's dagster.yaml (queued runs with its
concurrency limits), and the backfill is launched through the web server's GraphQL API and
executed by the daemon, one run per plate.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import lance
import pytest
from dagster import DagsterInstance

from imaging_assets.core.s3 import S3Settings
from imaging_assets.core.stores import S3Store
from imaging_assets.defs.jump.partitions import PLATES_PARTITIONS_NAME
from imaging_assets.demo.gallery import generate_gallery
from imaging_assets_tests.conftest import PROJECT_ROOT
from imaging_assets_tests.servers import BACKFILL_STATUS, LAUNCH_BACKFILL, DagsterDev

pytestmark = [pytest.mark.s3, pytest.mark.slow]
PLATE_ASSETS = [
    "load_data",
    "sampled_sites",
    "site_images",
    "well_profiles",
    "cell_profiles",
    "cell_crops",
]


def test_backfill_of_every_sample_plate_on_s3(tmp_path, s3_server, s3_bucket, monkeypatch):
    gallery = generate_gallery(tmp_path / "gallery", preset="tiny")
    env_s3 = s3_server.env()
    os.environ.update(
        {
            k: v
            for k, v in env_s3.items()
            if k.startswith("AWS_ACCESS") or k.startswith("AWS_SECRET")
        }
    )
    S3Store(f"s3://{s3_bucket}", S3Settings(endpoint_url=s3_server.endpoint_url)).upload_tree(
        gallery.root, prefix="gallery"
    )
    home = tmp_path / "dagster_home"
    home.mkdir()
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    (home / "dagster.yaml").write_text((PROJECT_ROOT / "dagster.yaml").read_text())
    env = {
        **{
            k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "IMAGING_ASSETS_"))
        },
        **env_s3,
        "DAGSTER_HOME": str(home),
        "IMAGING_ASSETS_SOURCE_ROOT": f"s3://{s3_bucket}/gallery/cpg0016-jump",
        "IMAGING_ASSETS_METADATA_ROOT": f"s3://{s3_bucket}/gallery/metadata",
        "IMAGING_ASSETS_LAKE": f"s3://{s3_bucket}/lake",
    }
    # the plate index registers the partitions (what `metadata_job` does in the UI)
    done = subprocess.run(
        [
            str(Path(sys.executable).with_name("dagster")),
            "job",
            "execute",
            "-m",
            "imaging_assets.definitions",
            "-j",
            "metadata_job",
        ],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    with DagsterInstance.from_config(str(home)) as instance:
        plates = sorted(instance.get_dynamic_partitions(PLATES_PARTITIONS_NAME))
    assert len(plates) == len(gallery.plates)

    with DagsterDev(env, tmp_path / "dagster_dev.log") as dev:
        launched = dev.graphql(
            LAUNCH_BACKFILL,
            {
                "params": {
                    "assetSelection": [{"path": [name]} for name in PLATE_ASSETS],
                    "partitionNames": plates,
                    "title": "all sample plates",
                    # one process per run: on a 2-core test machine a subprocess per step is slow
                    "runConfigData": {"execution": {"config": {"in_process": {}}}},
                }
            },
        )["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        deadline = time.monotonic() + 420
        status = None
        while time.monotonic() < deadline:
            answer = dev.graphql(BACKFILL_STATUS, {"id": launched["backfillId"]})
            status = answer["partitionBackfillOrError"]["status"]
            if status in (
                "COMPLETED",
                "COMPLETED_SUCCESS",
                "FAILED",
                "COMPLETED_FAILED",
                "CANCELED",
            ):
                break
            time.sleep(2)
        assert status in ("COMPLETED", "COMPLETED_SUCCESS"), (status, dev.log_tail())

    images = lance.dataset(
        f"s3://{s3_bucket}/lake/site_images.lance", storage_options=s3_server.storage_options()
    )
    sites = images.to_table(columns=["plate"])["plate"].to_pylist()
    imaged_types = {p.plate for p in gallery.plates if p.plate_type != "DMSO"}
    assert set(sites) == imaged_types  # every sampled plate type landed; DMSO plates sample nothing
    with DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        plate_runs = [r for r in runs if r.tags.get("dagster/partition") in plates]
        assert len(plate_runs) == len(plates)
        assert all(r.is_success for r in plate_runs)
