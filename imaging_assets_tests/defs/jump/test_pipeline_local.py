"""The whole asset graph through `materialize` on the tiny sample gallery and a local lake."""

from __future__ import annotations

import shutil

import lance
import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from dagster import instance_for_test

from imaging_assets.demo.gallery import generate_gallery
from imaging_assets_tests.pipeline import (
    materialize_metadata,
    materialize_plate,
    pipeline_resources,
    plate_partitions,
)


@pytest.fixture(scope="module")
def gallery(tmp_path_factory):
    return generate_gallery(tmp_path_factory.mktemp("gallery"), preset="tiny", seed=0)


@pytest.fixture(scope="module")
def built(gallery, tmp_path_factory):
    """Metadata, plate index and every plate of the tiny gallery, materialized once."""
    lake = tmp_path_factory.mktemp("lake")
    resources = pipeline_resources(str(gallery.source_root), str(gallery.metadata_root), str(lake))
    with instance_for_test() as instance:
        materialize_metadata(instance, resources)
        keys = plate_partitions(instance)
        results = {key: materialize_plate(instance, resources, key) for key in keys}
        yield {"lake": lake, "resources": resources, "instance": instance, "results": results}


def test_every_imaged_plate_becomes_a_partition(gallery, built):
    expected = sorted(f"{p.source}__{p.plate}" for p in gallery.plates)
    assert sorted(built["results"]) == expected
    index = pq.read_table(built["lake"] / "plate_index" / "all.parquet")
    without = index.filter(pc.is_null(index["load_data_key"]))
    assert without.num_rows >= 1  # the listed plate that has no images is indexed, not a partition


def test_load_data_keeps_wells_without_metadata(built):
    tables = [pq.read_table(p) for p in (built["lake"] / "load_data").glob("*.parquet")]
    flagged = sum(t.filter(pc.invert(t["has_metadata"])).num_rows for t in tables)
    assert flagged > 0
    for table in tables:
        assert set(table["channel"].to_pylist()) >= {"DNA", "AGP", "ER", "Mito", "RNA"}
        assert table["site"].type == "string"


def test_site_images_one_row_per_processed_site_with_provenance(built):
    dataset = lance.dataset(str(built["lake"] / "site_images.lance"))
    table = dataset.to_table(
        columns=["site_key", "plate", "dna_raw_uri", "dna_raw_md5", "dagster_run_id"]
    )
    assert table.num_rows > 0
    assert pc.count_distinct(table["site_key"]).as_py() == table.num_rows
    for result in built["results"].values():
        for check in result.get_asset_check_evaluations():
            assert check.passed, check
    sampled = sum(
        pq.read_metadata(p).num_rows for p in (built["lake"] / "sampled_sites").glob("*.parquet")
    )
    assert sampled >= table.num_rows  # sampled rows are (site, channel) rows
    sampled_sites = {
        key
        for p in (built["lake"] / "sampled_sites").glob("*.parquet")
        for key in pq.read_table(p, columns=["site_key"])["site_key"].to_pylist()
    }
    assert set(table["site_key"].to_pylist()) == sampled_sites  # every sampled site, no other


def _lance_state(lake) -> dict[str, tuple[int, int]]:
    """(version, bytes on disk) of every Lance dataset of the lake."""
    return {
        path.name: (
            lance.dataset(str(path)).version,
            sum(f.stat().st_size for f in path.rglob("*") if f.is_file()),
        )
        for path in sorted(lake.glob("*.lance"))
    }


def test_rerunning_an_unchanged_plate_adds_no_version_and_no_bytes(built):
    key = sorted(built["results"])[0]
    before = _lance_state(built["lake"])
    result = materialize_plate(built["instance"], built["resources"], key)
    assert _lance_state(built["lake"]) == before
    outcomes = {
        event.asset_key.to_user_string(): event.materialization.metadata["outcome"].value
        for event in result.get_asset_materialization_events()
        if "outcome" in event.materialization.metadata
    }
    assert set(outcomes.values()) == {"unchanged"} and "site_images" in outcomes, outcomes


def test_profiles_join_images_and_digests_verify(built):
    cells = lance.dataset(str(built["lake"] / "cell_profiles.lance"))
    images = lance.dataset(str(built["lake"] / "site_images.lance"))
    cell_sites = set(cells.to_table(columns=["site_key"])["site_key"].to_pylist())
    image_sites = set(images.to_table(columns=["site_key"])["site_key"].to_pylist())
    assert image_sites <= cell_sites
    for result in built["results"].values():
        checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
        assert checks["profile_digests_match_images"].passed
    crops = lance.dataset(str(built["lake"] / "cell_crops.lance"))
    assert crops.count_rows() > 0


@pytest.fixture()
def broken_gallery(gallery, tmp_path):
    root = tmp_path / "gallery"
    shutil.copytree(gallery.root, root)
    return root


def _tiffs(root, plate):
    return sorted(p for p in root.rglob("*.tiff") if plate in str(p))


def test_failures_over_tolerance_fail_the_run_and_leave_the_dataset(
    gallery, broken_gallery, tmp_path
):
    plate = next(p for p in gallery.plates if p.plate_type == "COMPOUND")
    key = f"{plate.source}__{plate.plate}"
    resources = pipeline_resources(
        str(broken_gallery / gallery.source_root.relative_to(gallery.root)),
        str(broken_gallery / gallery.metadata_root.relative_to(gallery.root)),
        str(tmp_path / "lake"),
    )
    with instance_for_test() as instance:
        materialize_metadata(instance, resources)
        materialize_plate(instance, resources, key)
        uri = str(tmp_path / "lake" / "site_images.lance")
        before = lance.dataset(uri)
        rows, version = before.count_rows(), before.version

        tiffs = [p for p in _tiffs(broken_gallery, plate.plate) if p.name.startswith("r01c01")]
        tiffs[0].write_bytes(b"")  # empty (well A01, a treatment: sampled)
        tiffs[-1].write_bytes(b"II*\x00 this is not a tiff")  # corrupt, another site of A01
        result = materialize_plate(instance, resources, key, raise_on_error=False)
        assert not result.success
        after = lance.dataset(uri)
        assert (after.version, after.count_rows()) == (version, rows)
        failed = lance.dataset(str(tmp_path / "lake" / "failed_images.lance")).to_table()
        assert set(failed["error_kind"].to_pylist()) <= {"empty", "corrupt"}
        assert sorted(failed["error_kind"].to_pylist()) == ["corrupt", "empty"]  # every failure

        tolerant = {"ops": {"site_images": {"config": {"max_failed_fraction": 1.0}}}}
        result = materialize_plate(
            instance, resources, key, run_config=tolerant, raise_on_error=False
        )
        assert not result.success  # tolerated failures would remove the sites' earlier rows
        assert lance.dataset(uri).version == version
        tolerant["ops"]["site_images"]["config"]["max_removed_fraction"] = 1.0
        result = materialize_plate(instance, resources, key, run_config=tolerant)
        assert result.success
        after = lance.dataset(uri)
        assert 0 < after.count_rows() < rows
        failed = lance.dataset(str(tmp_path / "lake" / "failed_images.lance")).to_table()
        assert sorted(failed["error_kind"].to_pylist()) == ["corrupt", "empty"]


def test_crops_are_centred_on_their_cells(built):
    from imaging_assets.read import open_lake

    lake = open_lake(str(built["lake"]))
    crops = lake.dataset("cell_crops").to_table(
        columns=["cell_id", "site_key", "center_x", "center_y", "touches_border"]
    )  # tiny images are smaller than a crop: every crop is padded, the centre still lines up
    assert crops.num_rows > 0
    row = crops.to_pylist()[0]
    crop = lake.cell_crop(row["cell_id"])
    site = lake.site(row["site_key"])
    size = crop.shape[-1]
    y, x = int(row["center_y"]), int(row["center_x"])
    assert np.array_equal(crop[:, size // 2, size // 2], site.array[:, y, x])


def test_a_plate_found_before_the_plate_table_lists_it(gallery, tmp_path):
    """The sensor's case: the run carries the batch; load data is found by listing; the plate
    type is UNKNOWN, so nothing is sampled until the metadata lands."""
    import gzip

    from dagster import materialize

    from imaging_assets.defs.jump.assets import ALL_ASSETS
    from imaging_assets.defs.jump.partitions import PLATES_PARTITIONS_NAME

    root = tmp_path / "gallery"
    shutil.copytree(gallery.root, root)
    for table in ("plate.csv.gz", "well.csv.gz"):  # the metadata has not caught up yet
        path = root / "metadata" / table
        rows = gzip.decompress(path.read_bytes()).decode().splitlines()
        kept = [row for row in rows if "BR00117035" not in row]
        path.write_bytes(gzip.compress(("\n".join(kept) + "\n").encode()))
    resources = pipeline_resources(
        str(root / "cpg0016-jump"), str(root / "metadata"), str(tmp_path / "lake")
    )
    with instance_for_test() as instance:
        materialize_metadata(instance, resources)
        assert "source_4__BR00117035" not in plate_partitions(instance)
        instance.add_dynamic_partitions(PLATES_PARTITIONS_NAME, ["source_4__BR00117035"])
        result = materialize(
            ALL_ASSETS,
            selection=["load_data", "sampled_sites"],
            partition_key="source_4__BR00117035",
            instance=instance,
            resources=resources,
            tags={"imaging_assets/batch": "2021_04_26_Batch1"},
        )
        assert result.success
    load_data = pq.read_table(tmp_path / "lake" / "load_data" / "source_4__BR00117035.parquet")
    assert load_data.num_rows > 0 and set(load_data["batch"].to_pylist()) == {"2021_04_26_Batch1"}
    sampled = pq.read_table(tmp_path / "lake" / "sampled_sites" / "source_4__BR00117035.parquet")
    assert sampled.num_rows == 0


def test_the_catalog_shows_columns_row_counts_and_checked_partitions(built):
    for key, result in built["results"].items():
        materialization = result.asset_materializations_for_node("site_images")[0]
        metadata = materialization.metadata
        columns = {c.name: c for c in metadata["dagster/column_schema"].value.columns}
        assert "provenance" in columns["dna_raw_md5"].description
        assert "canonical" in columns["dna_raw_uri"].description
        plate_rows = metadata["dagster/row_count"].value
        assert plate_rows == metadata["rows"].value
        assert metadata["dataset_rows_total"].value >= plate_rows
        for check in result.get_asset_check_evaluations():
            assert check.metadata["partition"].value == key


def test_parquet_tables_show_columns_and_row_counts(built):
    for result in built["results"].values():
        for name in ("load_data", "sampled_sites"):
            metadata = result.asset_materializations_for_node(name)[0].metadata
            columns = [c.name for c in metadata["dagster/column_schema"].value.columns]
            assert "site_key" in columns and "uri" in columns
            assert metadata["dagster/row_count"].value == metadata["rows"].value


def test_every_site_carries_its_quality_features_and_a_qc_verdict(built):
    from imaging_assets.jump.schemas import quality_column

    images = lance.dataset(str(built["lake"] / "site_images.lance"))
    columns = ["site_key", "qc_metric_set", "qc_scale"]
    columns += [quality_column("PowerLogLogSlope", "DNA"), quality_column("PercentMaximal", "RNA")]
    rows = images.to_table(columns=columns).to_pylist()
    assert rows and all(r["qc_metric_set"] == "cellprofiler.MeasureImageQuality/1" for r in rows)
    assert all(r["qc_scale"] == 65535.0 for r in rows)
    assert all(r[c] is not None and np.isfinite(r[c]) for r in rows for c in columns[3:])
    verdicts = lance.dataset(str(built["lake"] / "site_qc.lance")).to_table().to_pylist()
    assert sorted(v["site_key"] for v in verdicts) == sorted(r["site_key"] for r in rows)
    # the tiny gallery has no defects, and its plates (6 sites) are too small to judge
    assert all(v["qc_pass"] and v["qc_reasons"] == [] for v in verdicts)
    assert all("fewer than 10 sites" in v["qc_rules"] for v in verdicts)


def test_each_plate_has_a_plate_map_and_partitioned_check_results(built):
    for key, result in built["results"].items():
        evaluations = [
            e
            for e in result.get_asset_check_evaluations()
            if e.asset_key.to_user_string() == "site_images"
        ]
        assert len(evaluations) == 5 and {e.partition for e in evaluations} == {key}
        metadata = result.asset_materializations_for_node("site_images")[0].metadata
        plate_map = built["lake"] / "plate_maps" / f"{key}.png"
        if metadata["rows"].value:
            assert plate_map.read_bytes().startswith(b"\x89PNG")
            assert metadata["plate_map_ref"].value == f"lake:plate_maps/{key}.png"
            assert metadata["qc_flagged_sites"].value == 0
        else:  # a plate type that is not sampled (DMSO): nothing to draw
            assert not plate_map.exists() and "plate_map" not in metadata


def test_a_plate_larger_than_rows_per_file_spans_files_in_one_commit(gallery, tmp_path):
    """site_images writes at most rows_per_file sites per data file (bounded writer memory): a
    plate over it lands in several files, in one version, and a re-run (with the default file
    size too) finds it unchanged."""
    lake = tmp_path / "lake"
    resources = pipeline_resources(str(gallery.source_root), str(gallery.metadata_root), str(lake))
    key = "source_4__BR00117035"
    small_files = {"ops": {"site_images": {"config": {"rows_per_file": 3}}}}
    selection = ["load_data", "sampled_sites", "site_images"]
    with instance_for_test() as instance:
        materialize_metadata(instance, resources)
        materialize_plate(instance, resources, key, selection=selection, run_config=small_files)
        dataset = lance.dataset(str(lake / "site_images.lance"))
        sites = dataset.count_rows()
        files = [f for fragment in dataset.get_fragments() for f in fragment.data_files()]
        assert sites > 3 and len(files) == -(-sites // 3)
        version = dataset.version
        for config in (small_files, None):
            result = materialize_plate(
                instance, resources, key, selection=["site_images"], run_config=config
            )
            [event] = result.get_asset_materialization_events()
            assert event.materialization.metadata["outcome"].value == "unchanged"
        assert lance.dataset(str(lake / "site_images.lance")).version == version
