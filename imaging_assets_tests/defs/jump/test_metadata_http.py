"""The JUMP metadata read from an https-style base URL (a loopback HTTP server), as users do."""

from __future__ import annotations

import pyarrow.parquet as pq
from dagster import instance_for_test, materialize

from imaging_assets.defs.jump.assets import metadata_table_assets, well_metadata
from imaging_assets.demo.gallery import generate_gallery
from imaging_assets_tests.pipeline import pipeline_resources


def test_metadata_assets_from_http(tmp_path, http_server):
    gallery = generate_gallery(tmp_path / "gallery", preset="tiny")
    base = http_server(gallery.root) + "/metadata"
    resources = pipeline_resources(str(gallery.source_root), base, str(tmp_path / "lake"))
    with instance_for_test() as instance:
        result = materialize(
            [*metadata_table_assets, well_metadata], instance=instance, resources=resources
        )
    assert result.success
    wells = pq.read_table(tmp_path / "lake" / "well_metadata" / "all.parquet")
    assert wells.num_rows > 0
    assert set(wells["control_role"].to_pylist()) >= {"trt", "poscon", "negcon"}
    source = result.asset_materializations_for_node("jump_plates")[0].metadata["source"].value
    assert source.startswith("http://127.0.0.1:")
