"""A backfill of every sample plate in batch runs, queued by `imaging-assets plates backfill`
through `dagster dev`'s web server, drained by its daemon, on S3.

The code location is configured only through the environment (as in README), the source and
the lake live on SeaweedFS, the instance is the project's dagster.yaml (queued runs with its
concurrency limits). (The one-run-per-plate backfill launched as in the UI is the deployment
test's, on Postgres and the same S3 server.)
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import lance
import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from imaging_assets.core.s3 import S3Settings
from imaging_assets.core.stores import S3Store
from imaging_assets.defs.common.batches import BATCH_OP, BATCH_RUN_TAG
from imaging_assets.defs.jump.partitions import PLATES_PARTITIONS_NAME
from imaging_assets.demo.gallery import generate_gallery
from imaging_assets_tests.conftest import PROJECT_ROOT
from imaging_assets_tests.servers import DagsterDev

pytestmark = [pytest.mark.s3, pytest.mark.slow]


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

    cli = str(Path(sys.executable).with_name("imaging-assets"))
    with DagsterDev(env, tmp_path / "dagster_dev.log") as dev:
        url = f"http://127.0.0.1:{dev.port}"
        queued = subprocess.run(
            [cli, "plates", "backfill", "--plates-per-run", "2", "--url", url],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert queued.returncode == 0, queued.stderr[-3000:]
        assert f"{len(plates)} plates (missing {len(plates)}) in 4 runs of at most 2" in (
            queued.stdout
        )
        again = subprocess.run(
            [cli, "plates", "backfill", "--dry-run", "--url", url],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert again.stdout.startswith(f"0 plates (in_flight {len(plates)})"), again.stdout

        deadline = time.monotonic() + 420
        with DagsterInstance.from_config(str(home)) as instance:
            while True:
                batches = instance.get_runs(RunsFilter(job_name="plate_batch_job"))
                if all(run.is_finished for run in batches) or time.monotonic() > deadline:
                    break
                time.sleep(2)
            assert [r.status for r in batches] == [DagsterRunStatus.SUCCESS] * 4, dev.log_tail()
            listed = sorted(
                tuple(run.run_config["ops"][BATCH_OP]["config"]["partitions"]) for run in batches
            )
            by_source: dict[str, list[str]] = {}
            for key in plates:  # the order the CLI picks: missing plates, sorted
                by_source.setdefault(key.split("__")[0], []).append(key)
            expected = [
                tuple(keys[i : i + 2])
                for keys in by_source.values()
                for i in range(0, len(keys), 2)
            ]
            assert listed == sorted(expected)
            assert all(
                run.tags["imaging_assets/source"]
                == run.run_config["ops"][BATCH_OP]["config"]["partitions"][0].split("__")[0]
                for run in batches
            )

    images = lance.dataset(
        f"s3://{s3_bucket}/lake/site_images.lance", storage_options=s3_server.storage_options()
    )
    sites = images.to_table(columns=["plate"])["plate"].to_pylist()
    imaged_types = {p.plate for p in gallery.plates if p.plate_type != "DMSO"}
    assert set(sites) == imaged_types  # every sampled plate type landed; DMSO plates sample nothing
    with DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        plate_runs = [r for r in runs if r.tags.get("dagster/partition") in plates]
        assert len(plate_runs) == len(plates)  # one run per plate, inside the batch runs
        assert all(r.is_success and r.tags.get(BATCH_RUN_TAG) for r in plate_runs)
