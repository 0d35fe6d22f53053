"""Re-runs never silently delete a plate's rows; plates without profiles run green."""

from __future__ import annotations

import gzip
import shutil

import lance
import pytest
from dagster import instance_for_test

from imaging_assets.core.lance_tables import RemovalRefusedError
from imaging_assets.definitions import defs
from imaging_assets.demo.gallery import generate_gallery
from imaging_assets_tests.pipeline import (
    materialize_metadata,
    materialize_plate,
    pipeline_resources,
)

PLATE = "source_4__BR00121001"


@pytest.fixture()
def plate_built(tmp_path):
    gallery = generate_gallery(tmp_path / "gallery", preset="tiny", seed=0)
    lake = tmp_path / "lake"
    resources = pipeline_resources(str(gallery.source_root), str(gallery.metadata_root), str(lake))
    with instance_for_test() as instance:
        materialize_metadata(instance, resources)
        assert materialize_plate(instance, resources, PLATE).success
        yield {"gallery": gallery, "lake": lake, "resources": resources, "instance": instance}


def _site_images(lake) -> lance.LanceDataset:
    return lance.dataset(str(lake / "site_images.lance"))


def _drop_plate_from_well_csv(metadata_root, plate: str) -> None:
    path = metadata_root / "well.csv.gz"
    lines = gzip.decompress(path.read_bytes()).decode().splitlines(keepends=True)
    path.write_bytes(
        gzip.compress("".join(line for line in lines if f",{plate}," not in line).encode())
    )


def test_a_rerun_after_well_csv_lost_the_plate_refuses_to_empty_it(plate_built):
    lake, instance, resources = (
        plate_built["lake"],
        plate_built["instance"],
        plate_built["resources"],
    )
    before = _site_images(lake)
    rows = before.count_rows(filter="plate = 'BR00121001'")
    assert rows > 0
    _drop_plate_from_well_csv(plate_built["gallery"].metadata_root, "BR00121001")
    materialize_metadata(instance, resources)
    with pytest.raises(
        RemovalRefusedError, match=rf"remove {rows} of the plate's {rows}"
    ) as raised:
        materialize_plate(instance, resources, PLATE)
    assert "max_removed_fraction" in str(raised.value)
    after = _site_images(lake)
    assert after.version == before.version
    assert after.count_rows(filter="plate = 'BR00121001'") == rows
    # the user says it is intended: allowed explicitly
    result = materialize_plate(
        instance,
        resources,
        PLATE,
        run_config={"ops": {"site_images": {"config": {"max_removed_fraction": 1.0}}}},
    )
    assert result.success
    assert _site_images(lake).count_rows(filter="plate = 'BR00121001'") == 0


def test_a_changed_sampling_config_may_drop_sites(plate_built):
    lake, instance, resources = (
        plate_built["lake"],
        plate_built["instance"],
        plate_built["resources"],
    )
    rows = _site_images(lake).count_rows(filter="plate = 'BR00121001'")
    fewer = {
        "ops": {
            "sampled_sites": {"config": {"sites_per_role": {"trt": 1, "poscon": 1, "negcon": 1}}}
        }
    }
    assert materialize_plate(instance, resources, PLATE, run_config=fewer).success
    assert 0 < _site_images(lake).count_rows(filter="plate = 'BR00121001'") < rows


def test_a_plate_without_cellprofiler_outputs_runs_green(plate_built):
    gallery, instance, resources = (
        plate_built["gallery"],
        plate_built["instance"],
        plate_built["resources"],
    )
    workspace = gallery.source_root / "source_4" / "workspace"
    shutil.rmtree(workspace / "profiles" / "2021_04_26_Batch1" / "BR00117035")
    shutil.rmtree(workspace / "backend" / "2021_04_26_Batch1" / "BR00117035")
    result = materialize_plate(instance, resources, "source_4__BR00117035")
    assert result.success
    well = result.asset_materializations_for_node("well_profiles")[0].metadata
    assert well["profiles_found"].value is False
    assert "no per-well profiles" in well["status"].value
    checks = result.get_asset_check_evaluations()
    assert all(check.passed for check in checks)


def test_images_job_runs_only_the_image_path():
    job = defs.resolve_job_def("images_job")
    names = {key.to_user_string() for key in job.asset_layer.executable_asset_keys}
    assert names == {"load_data", "sampled_sites", "site_images"}


def test_lake_plate_status_reports_rows_and_the_last_run(plate_built, capsys):
    from imaging_assets.cli.main import main

    assert main(["lake", "plate", PLATE, "--lake", str(plate_built["lake"])]) == 0
    shown = capsys.readouterr().out
    rows = _site_images(plate_built["lake"]).count_rows(filter="plate = 'BR00121001'")
    counted = {line.split()[0]: line.split()[1] for line in shown.splitlines()[1:5]}
    assert counted["site_images"] == f"{rows:,}" and rows > 0
    assert "last written" in shown and "by run" in shown
    assert "failed images" in shown


def test_a_lake_written_before_read_uri_existed_gains_the_column(tmp_path):
    """Older site_images / failed_images datasets lack `*_read_uri`: the next write adds it."""
    import pyarrow as pa

    from imaging_assets.core.lance_tables import ensure_dataset
    from imaging_assets.jump.schemas import failed_images_schema, site_images_schema

    gallery = generate_gallery(tmp_path / "gallery", preset="tiny", seed=0)
    lake = tmp_path / "lake"
    channels = ["DNA", "AGP", "ER", "Mito", "RNA"]
    for name, schema in (
        ("site_images", site_images_schema(channels)),
        ("failed_images", failed_images_schema()),
    ):
        old = pa.schema([f for f in schema if not f.name.endswith("read_uri")], schema.metadata)
        ensure_dataset(str(lake / f"{name}.lance"), old)
    resources = pipeline_resources(str(gallery.source_root), str(gallery.metadata_root), str(lake))
    with instance_for_test() as instance:
        materialize_metadata(instance, resources)
        assert materialize_plate(instance, resources, PLATE).success
    table = _site_images(lake).to_table(columns=["site_key", "dna_read_uri", "dna_raw_uri"])
    assert table.num_rows > 0 and all(table["dna_read_uri"].to_pylist())
    # no failures, nothing to change: failed_images is left as it was (gains the column on its
    # next real write, as test_lance_tables checks)
