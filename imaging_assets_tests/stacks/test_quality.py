"""Image quality per slice: measured while ingesting, equal to processing.quality.measure on the
raw slice; the best-focused slice; older lakes gain the columns."""

from __future__ import annotations

import math
from pathlib import Path

import lance
import numpy as np
import pyarrow as pa
import pytest
import tifffile
from scipy import ndimage

from imaging_assets.core.lake import Lake
from imaging_assets.core.partition_write import write_partition
from imaging_assets.core.stores import open_store
from imaging_assets.demo.gallery.stacks import generate_stacks
from imaging_assets.processing.quality import FEATURES, measure
from imaging_assets.stacks import quality
from imaging_assets.stacks.datasets import SLICES, specimen_partition
from imaging_assets.stacks.layout import SLICE, LayoutRules
from imaging_assets.stacks.manifest import scan
from imaging_assets.stacks.reading import dataset_uri, open_stack
from imaging_assets.stacks.slices import SLICES_SCHEMA, SliceStream


def _ingest(root: Path, lake: Path, specimen: str, schema: pa.Schema = SLICES_SCHEMA, **options):
    store = open_store(root)
    manifest = scan(store, LayoutRules()).manifest
    stream = SliceStream(
        store=store,
        specimen=specimen,
        split="train",
        slice_files=manifest.files_of(specimen, SLICE),
        run_id="run-1",
        **options,
    )
    batches = (b.select(schema.names) for b in stream.batches())
    write_partition(
        Lake.open(lake),
        specimen_partition(SLICES, specimen),
        schema,
        (pa.RecordBatch.from_arrays(b.columns, schema=schema) for b in batches),
        run_id="run-1",
        max_removed_fraction=None,
    )
    return stream


def _rows(lake: Path, specimen: str) -> list[dict]:
    dataset = lance.dataset(dataset_uri(str(lake), SLICES))
    columns = [c for c in dataset.schema.names if c != "pixels"]
    table = dataset.to_table(columns=columns, filter=f"specimen = '{specimen}'").sort_by("z")
    return table.to_pylist()


def test_column_names_are_cellprofilers():
    assert quality.FOCUS_COLUMN == "ImageQuality_FocusScore_Slice"
    assert "ImageQuality_Correlation_Slice_20" in quality.COLUMNS
    assert "ImageQuality_PowerLogLogSlope_Slice" in quality.COLUMNS
    assert len(quality.COLUMNS) == len(FEATURES) == 14
    for name in quality.COLUMNS:
        assert SLICES_SCHEMA.field(name).type == pa.float64()


@pytest.mark.parametrize("specimen", ["neuron_001", "neuron_002"])  # uncompressed and zlib
def test_metrics_equal_measure_on_the_raw_slice(tmp_path, specimen):
    collection = generate_stacks(tmp_path / "collection")
    stream = _ingest(collection.root, tmp_path / "lake", specimen)
    rows = _rows(tmp_path / "lake", specimen)
    assert [r["z"] for r in rows] == list(range(6))
    for row in rows:
        expected = measure(tifffile.imread(collection.slice_path(specimen, row["z"])))
        got = {feature: row[quality.column(feature)] for feature in FEATURES}
        assert got == expected  # the same function on the same pixels: equal, not close
        assert row["qc_metric_set"] == "cellprofiler.MeasureImageQuality/1"
        assert row["qc_scale"] == 65535.0
    assert stream.focus == {r["z"]: r[quality.FOCUS_COLUMN] for r in rows}
    assert stream.quality_cpu_seconds > 0
    stack = open_stack(str(tmp_path / "lake"), specimen)
    assert stack.quality["ImageQuality_FocusScore_Slice"].to_pylist() == [
        r[quality.FOCUS_COLUMN] for r in rows
    ]
    assert stack.provenance["slices"][0]["qc_metric_set"] == quality.METRIC_SET_NAME


def _focus_stack(folder: Path, sharp: int) -> None:
    """Blurred copies of one scene of dark blobs on a bright field, the scene sharp at z `sharp`,
    and at z 6 a slice with nothing in it but the field and camera noise."""
    rng = np.random.default_rng(7)
    h, w = 256, 256
    yy, xx = np.mgrid[:h, :w]
    scene = np.full((h, w), 3000.0)
    for _ in range(40):
        cy, cx = rng.uniform(0, h), rng.uniform(0, w)
        scene[(yy - cy) ** 2 + (xx - cx) ** 2 < rng.uniform(4, 30)] -= 1500
    folder.mkdir(parents=True)
    for z in range(7):
        if z == 6:
            image = np.full((h, w), 3000.0)
        else:
            image = ndimage.gaussian_filter(scene, 1.5 * abs(z - sharp) + (z != sharp))
        image = np.clip(image + rng.normal(0, 25, (h, w)), 0, 65535).astype(np.uint16)
        tifffile.imwrite(folder / f"focus_bf-{z:04d}.tif", image)


@pytest.mark.parametrize("sharp", [1, 3])
def test_best_focus_is_the_one_sharp_slice(tmp_path, sharp):
    _focus_stack(tmp_path / "collection" / "focus", sharp)
    stream = _ingest(tmp_path / "collection", tmp_path / "lake", "focus")
    assert stream.best_focus_z == sharp
    stack = open_stack(str(tmp_path / "lake"), "focus")
    assert stack.best_focus_z == sharp
    # why FocusScore and not the least negative PowerLogLogSlope: the empty, noise-only slice
    # (z 6) has the flattest spectrum and would be taken for the sharpest
    slopes = stack.quality["ImageQuality_PowerLogLogSlope_Slice"].to_pylist()
    assert int(np.argmax(slopes)) == 6


def test_best_focus_ties_and_gaps():
    assert quality.best_focus([3, 1, 2], [0.5, 0.5, 0.1]) == 1  # ties: the lowest z
    assert quality.best_focus([0, 1, 2], [None, 0.2, math.nan]) == 1
    assert quality.best_focus([0, 1], [None, None]) is None
    assert quality.best_focus([], []) is None


def test_slices_that_are_not_integers_get_null_metrics():
    values = quality.measure_slice(np.ones((8, 8), dtype=np.float32))
    assert set(values) == {*quality.COLUMNS, "qc_metric_set", "qc_scale"}
    assert all(v is None for v in values.values())
    assert quality.measure_slice(np.arange(64, dtype=np.uint8).reshape(8, 8))["qc_scale"] == 255


def test_measuring_can_be_turned_off(tmp_path):
    collection = generate_stacks(tmp_path / "collection")
    stream = _ingest(collection.root, tmp_path / "lake", "neuron_003", measure_quality=False)
    assert stream.focus == {} and stream.best_focus_z is None
    rows = _rows(tmp_path / "lake", "neuron_003")
    assert all(r[quality.FOCUS_COLUMN] is None and r["qc_metric_set"] is None for r in rows)
    assert open_stack(str(tmp_path / "lake"), "neuron_003").best_focus_z is None


def test_an_older_lake_gains_the_quality_columns(tmp_path):
    collection = generate_stacks(tmp_path / "collection")
    lake = tmp_path / "lake"
    added = {*quality.COLUMNS, "qc_metric_set", "qc_scale"}
    old = pa.schema([f for f in SLICES_SCHEMA if f.name not in added])
    _ingest(collection.root, lake, "neuron_001", schema=old)
    assert not added & set(lance.dataset(dataset_uri(str(lake), SLICES)).schema.names)
    before = open_stack(str(lake), "neuron_001")  # read before any newer write: no columns yet
    assert before.best_focus_z is None and before.quality.num_rows == 6

    _ingest(collection.root, lake, "neuron_002")  # a newer writer adds them (null for old rows)
    assert added <= set(lance.dataset(dataset_uri(str(lake), SLICES)).schema.names)
    old_rows = _rows(lake, "neuron_001")
    assert all(r[quality.FOCUS_COLUMN] is None for r in old_rows)
    assert open_stack(str(lake), "neuron_001").best_focus_z is None
    new = open_stack(str(lake), "neuron_002")
    assert new.best_focus_z is not None
    assert new.best_focus_z == int(np.argmax(new.quality[quality.FOCUS_COLUMN].to_numpy()))
