"""The whole graph with source and lake on S3 (a real SeaweedFS server on loopback).

Also the faults: the server stopped in the middle of a plate's run, then brought back.
"""

from __future__ import annotations

import lance
import pytest
from dagster import instance_for_test

from imaging_assets.core.s3 import S3Settings
from imaging_assets.core.stores import S3Store
from imaging_assets.demo.gallery import generate_gallery
from imaging_assets_tests.pipeline import (
    materialize_metadata,
    materialize_plate,
    pipeline_resources,
    plate_partitions,
)

pytestmark = pytest.mark.s3


@pytest.fixture(scope="module")
def tiny_gallery(tmp_path_factory):
    return generate_gallery(tmp_path_factory.mktemp("gallery"), preset="tiny", seed=0)


@pytest.fixture()
def s3_gallery(tiny_gallery, s3_server, s3_bucket, monkeypatch):
    """The tiny gallery uploaded to a fresh bucket; credentials in the environment only."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    store = S3Store(f"s3://{s3_bucket}", S3Settings(endpoint_url=s3_server.endpoint_url))
    store.upload_tree(tiny_gallery.root, prefix="gallery")
    return {
        "source": f"s3://{s3_bucket}/gallery/{tiny_gallery.source_root.relative_to(tiny_gallery.root).as_posix()}",
        "metadata": f"s3://{s3_bucket}/gallery/{tiny_gallery.metadata_root.relative_to(tiny_gallery.root).as_posix()}",
        "lake": f"s3://{s3_bucket}/lake",
        "endpoint": s3_server.endpoint_url,
        "storage_options": s3_server.storage_options(),
    }


def test_every_asset_on_s3(tiny_gallery, s3_gallery):
    resources = pipeline_resources(
        s3_gallery["source"], s3_gallery["metadata"], s3_gallery["lake"], s3_gallery["endpoint"]
    )
    with instance_for_test() as instance:
        materialize_metadata(instance, resources)
        keys = plate_partitions(instance)
        assert len(keys) == len(tiny_gallery.plates)
        for key in keys:
            result = materialize_plate(instance, resources, key)
            assert all(check.passed for check in result.get_asset_check_evaluations())
        options = s3_gallery["storage_options"]
        images = lance.dataset(f"{s3_gallery['lake']}/site_images.lance", storage_options=options)
        rows = images.count_rows()
        assert rows > 0
        assert (
            images.to_table(columns=["dna_raw_uri"])["dna_raw_uri"][0].as_py().startswith("s3://")
        )
        cells = lance.dataset(f"{s3_gallery['lake']}/cell_profiles.lance", storage_options=options)
        assert cells.count_rows() > 0

        # an unchanged re-run of one plate on S3 commits nothing; a changed one replaces it
        version = images.version
        materialize_plate(instance, resources, keys[0])
        images = lance.dataset(f"{s3_gallery['lake']}/site_images.lance", storage_options=options)
        assert images.count_rows() == rows and images.version == version
        recipe = {"ops": {"site_images": {"config": {"recipe_params": {"percentile": 2.0}}}}}
        materialize_plate(instance, resources, keys[0], run_config=recipe)
        images = lance.dataset(f"{s3_gallery['lake']}/site_images.lance", storage_options=options)
        assert images.count_rows() == rows and images.version == version + 1


def test_server_stopped_mid_plate_leaves_dataset_then_rerun_completes(s3_server, s3_gallery):
    resources = pipeline_resources(
        s3_gallery["source"],
        s3_gallery["metadata"],
        s3_gallery["lake"],
        s3_gallery["endpoint"],
        max_attempts=2,
    )
    options = s3_gallery["storage_options"]
    uri = f"{s3_gallery['lake']}/site_images.lance"
    with instance_for_test() as instance:
        materialize_metadata(instance, resources)
        first, second = plate_partitions(instance)[:2]
        materialize_plate(instance, resources, first)
        before = lance.dataset(uri, storage_options=options)
        rows, version = before.count_rows(), before.version

        # the second plate's manifests are written, then the store goes away before its images
        materialize_plate(instance, resources, second, selection=["load_data", "sampled_sites"])
        s3_server.stop()
        try:
            result = materialize_plate(
                instance, resources, second, selection=["site_images"], raise_on_error=False
            )
            assert not result.success
            failure = next(e for e in result.all_events if e.is_step_failure)
            assert "127.0.0.1" in str(failure.step_failure_data.error) or "onnect" in str(
                failure.step_failure_data.error
            )
        finally:
            s3_server.restart()
        after = lance.dataset(uri, storage_options=options)
        assert (after.version, after.count_rows()) == (version, rows)

        result = materialize_plate(instance, resources, second, selection=["site_images"])
        assert result.success
        done = lance.dataset(uri, storage_options=options)
        keys = done.to_table(columns=["site_key"])["site_key"].to_pylist()
        assert len(keys) == len(set(keys)) > rows
