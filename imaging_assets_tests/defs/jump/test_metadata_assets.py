"""metadata_job with JUMP tables missing: optional ones become empty typed tables, required fail."""

from __future__ import annotations

import logging
import shutil

import pyarrow.parquet as pq
import pytest
from dagster import DagsterEventType, instance_for_test, materialize

from imaging_assets.defs.jump.assets import UNPARTITIONED_ASSETS
from imaging_assets.defs.jump.metadata import METADATA_ASSETS
from imaging_assets.demo.gallery import generate_gallery
from imaging_assets.jump.metadata import FILE_NAMES, schema
from imaging_assets_tests.pipeline import pipeline_resources, plate_partitions

UNUSED = ("compound_source", "cellprofiler_version", "microscope_filter")


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    return generate_gallery(tmp_path_factory.mktemp("gallery"), preset="tiny", seed=0)


@pytest.fixture()
def copy(gallery, tmp_path):
    root = tmp_path / "gallery"
    shutil.copytree(gallery.root, root)
    return root


def _resources(root, tmp_path):
    return pipeline_resources(
        str(root / "cpg0016-jump"), str(root / "metadata"), str(tmp_path / "lake")
    )


def test_the_unused_tables_are_optional_and_the_rest_required():
    from imaging_assets.jump.metadata import OPTIONAL_TABLES, REQUIRED_TABLES

    assert set(OPTIONAL_TABLES) == set(UNUSED)
    assert set(REQUIRED_TABLES) == set(FILE_NAMES) - set(UNUSED)


def test_missing_optional_tables_become_empty_typed_tables(copy, tmp_path):
    for name in UNUSED:
        (copy / "metadata" / FILE_NAMES[name]).unlink()
    resources = _resources(copy, tmp_path)
    with instance_for_test() as instance:
        result = materialize(UNPARTITIONED_ASSETS, instance=instance, resources=resources)
        assert result.success
        assert plate_partitions(instance)  # the plate index still registered the plates
        by_name = {
            e.materialization.asset_key.to_user_string(): e.materialization.metadata
            for e in result.get_asset_materialization_events()
        }
        warnings = [
            entry.user_message
            for entry in instance.all_logs(result.run_id)
            if entry.level == logging.WARNING
        ]
    assets = {table: asset for asset, table in METADATA_ASSETS.items()}
    for name in UNUSED:
        meta = by_name[assets[name]]
        assert meta["missing"].value is True
        assert FILE_NAMES[name] in meta["source"].value
        assert meta["rows"].value == 0
        table = pq.read_table(tmp_path / "lake" / assets[name] / "all.parquet")
        assert table.num_rows == 0 and table.schema.equals(schema(name))
        assert any(FILE_NAMES[name] in (w or "") for w in warnings)
    present = by_name["jump_plates"]
    assert present["missing"].value is False and present["rows"].value > 0


@pytest.mark.parametrize("name", ["well", "perturbation_control"])
def test_a_missing_required_table_fails_clearly(copy, tmp_path, name):
    (copy / "metadata" / FILE_NAMES[name]).unlink()
    resources = _resources(copy, tmp_path)
    with instance_for_test() as instance:
        result = materialize(
            UNPARTITIONED_ASSETS, instance=instance, resources=resources, raise_on_error=False
        )
    assert not result.success
    failures = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
    assert len(failures) == 1
    error, messages = failures[0].step_failure_data.error, []
    while error is not None:
        messages.append(error.message)
        error = error.cause
    message = "\n".join(messages)
    assert FILE_NAMES[name] in message and "required" in message
    assert all(FILE_NAMES[t] in message for t in ("plate", "well"))  # the list of required tables
