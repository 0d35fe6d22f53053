"""Slices into Lance: checks, one commit per specimen, window reads equal the raw TIFF's."""

from __future__ import annotations

import hashlib
from pathlib import Path

import lance
import numpy as np
import pytest
import tifffile

from imaging_assets.core.lake import Lake
from imaging_assets.core.partition_write import write_partition
from imaging_assets.core.stores import open_store
from imaging_assets.demo.gallery.stacks import generate_stacks
from imaging_assets.stacks.datasets import SLICES, specimen_partition
from imaging_assets.stacks.layout import SLICE, LayoutRules
from imaging_assets.stacks.manifest import scan
from imaging_assets.stacks.reading import dataset_uri, open_stack
from imaging_assets.stacks.slices import SLICES_SCHEMA, SliceFailuresError, SliceStream


@pytest.fixture()
def collection(tmp_path):
    return generate_stacks(tmp_path / "collection")


def _ingest(collection, lake: Path, specimen: str, **options):
    store = open_store(collection.root)
    manifest = scan(store, LayoutRules()).manifest
    stream = SliceStream(
        store=store,
        specimen=specimen,
        split=manifest.specimen(specimen)["split"],
        slice_files=manifest.files_of(specimen, SLICE),
        run_id="run-1",
        **options,
    )
    commit = write_partition(
        Lake.open(lake),
        specimen_partition(SLICES, specimen),
        SLICES_SCHEMA,
        stream.batches(),
        run_id="run-1",
        max_removed_fraction=None,
        max_rows_per_file=64,
        allow_external_blobs=options.get("reference", False),
    )
    return stream, commit


def _raw(collection, specimen: str) -> np.ndarray:
    return np.stack([tifffile.imread(collection.slice_path(specimen, z)) for z in range(6)])


@pytest.mark.parametrize("specimen", ["neuron_001", "neuron_002"])  # uncompressed and zlib
def test_window_reads_equal_the_raw_tiffs(collection, tmp_path, specimen):
    _ingest(collection, tmp_path / "lake", specimen)
    raw = _raw(collection, specimen)
    stack = open_stack(str(tmp_path / "lake"), specimen)
    assert stack.shape == raw.shape and stack.dtype == raw.dtype and stack.z == list(range(6))
    windows = [
        (slice(None), slice(None), slice(None)),
        (2, slice(10, 50), slice(7, 91)),
        (slice(1, 5), slice(0, 96), slice(0, 128)),  # whole rows: one range per slice
        (slice(0, 6, 2), slice(5, 80, 3), slice(100, 128)),
        (-1, slice(90, 200), slice(120, 200)),
    ]
    for z, y, x in windows:
        np.testing.assert_array_equal(stack.window(z=z, y=y, x=x), raw[z, y, x])
    np.testing.assert_array_equal(stack[3], raw[3])
    np.testing.assert_array_equal(stack.slice(4), raw[4])


def test_provenance_of_every_slice(collection, tmp_path):
    stream, commit = _ingest(collection, tmp_path / "lake", "neuron_002")
    assert stream.slices_written == 6 and commit.version == 2 and commit.rows == 6
    stack = open_stack(str(tmp_path / "lake"), "neuron_002")
    for row in stack.provenance["slices"]:
        data = Path(row["raw_uri"]).read_bytes()
        assert row["raw_size"] == len(data)
        assert row["raw_md5"] == hashlib.md5(data).hexdigest()
        assert row["raw_sha256"] == hashlib.sha256(data).hexdigest()
        assert row["tiff_compression"] == "adobe_deflate"
        assert row["dagster_run_id"] == "run-1"
    ds = lance.dataset(dataset_uri(str(tmp_path / "lake"), "zstack_slices"))
    properties = ds.get_transactions(1)[0].transaction_properties
    assert properties["dagster_run_id"] == "run-1" and properties["partition"] == "neuron_002"


def test_rerun_replaces_the_specimen_in_one_commit_or_none_when_unchanged(collection, tmp_path):
    lake = tmp_path / "lake"
    _ingest(collection, lake, "neuron_001")
    _ingest(collection, lake, "neuron_002")
    before = lance.dataset(dataset_uri(str(lake), "zstack_slices"))
    _, unchanged = _ingest(collection, lake, "neuron_001")
    assert not unchanged.changed and lance.dataset(before.uri).version == before.version
    tifffile.imwrite(collection.slice_path("neuron_001", 2), _raw(collection, "neuron_001")[2] + 1)
    _, commit = _ingest(collection, lake, "neuron_001")
    after = lance.dataset(dataset_uri(str(lake), "zstack_slices"))
    assert after.version == before.version + 1 and commit.changed and commit.rows_before == 6
    assert after.count_rows() == 12
    assert after.count_rows(filter="specimen = 'neuron_002'") == 6


def test_concurrent_commits_of_two_specimens_both_land(collection, tmp_path):
    lake = tmp_path / "lake"
    _ingest(collection, lake, "neuron_002")
    uri = dataset_uri(str(lake), "zstack_slices")

    def meanwhile(_rows):  # another specimen commits between this run's staging and its commit
        _ingest(collection, lake, "neuron_003")

    store = open_store(collection.root)
    rows = scan(store, LayoutRules()).manifest.files_of("neuron_001", SLICE)
    write_partition(
        Lake.open(lake),
        specimen_partition(SLICES, "neuron_001"),
        SLICES_SCHEMA,
        SliceStream(store, "neuron_001", "train", rows).batches(),
        run_id="run-2",
        max_removed_fraction=None,
        before_commit=meanwhile,
    )
    ds = lance.dataset(uri)
    assert ds.count_rows(filter="specimen = 'neuron_001'") == 6
    assert ds.count_rows(filter="specimen = 'neuron_003'") == 6
    assert ds.count_rows() == 18


def _break(collection, kind: str) -> int:
    """Damage slice z=3 of neuron_001 in one way; returns z."""
    path = collection.slice_path("neuron_001", 3)
    if kind == "missing":
        path.unlink()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(path.read_bytes()[:5000])
    elif kind == "wrong_size":
        tifffile.imwrite(path, np.zeros((50, 60), np.uint16))
    elif kind == "undecodable":
        path.write_bytes(b"not a tiff at all" * 100)
    return 3


@pytest.mark.parametrize("kind", ["missing", "empty", "truncated", "wrong_size", "undecodable"])
def test_bad_slice_fails_the_specimen_and_nothing_is_written(collection, tmp_path, kind):
    lake = tmp_path / "lake"
    _ingest(collection, lake, "neuron_001")
    uri = dataset_uri(str(lake), "zstack_slices")
    version = lance.dataset(uri).version
    z = _break(collection, kind)
    with pytest.raises(SliceFailuresError, match=rf"z={z} {kind}") as caught:
        _ingest(collection, lake, "neuron_001")
    assert [f.kind for f in caught.value.failures] == [kind]
    ds = lance.dataset(uri)
    assert ds.version == version and ds.count_rows() == 6
    assert ds.to_table(columns=["raw_sha256"], filter="z = 3")["raw_sha256"][0].as_py() != ""


def test_size_changed_since_listing_is_truncated(collection, tmp_path):
    store = open_store(collection.root)
    rows = scan(store, LayoutRules()).manifest.files_of("neuron_001", SLICE)
    rows = [dict(r, size=r["size"] + 10) if r["z"] == 2 else r for r in rows]
    stream = SliceStream(store, "neuron_001", "train", rows, tolerate_failures=True)
    batches = list(stream.batches())
    assert len(batches) == 5
    assert [(f.z, f.kind) for f in stream.failures] == [(2, "truncated")]


def test_tolerated_failures_write_the_good_slices(collection, tmp_path):
    _break(collection, "empty")
    stream, commit = _ingest(collection, tmp_path / "lake", "neuron_001", tolerate_failures=True)
    assert stream.slices_written == 5 and commit.rows == 5
    assert [(f.z, f.kind) for f in stream.failures] == [(3, "empty")]


def test_reference_mode_copies_no_pixels(collection, tmp_path):
    lake = tmp_path / "lake"
    _ingest(collection, lake, "neuron_001", reference=True)
    stack = open_stack(str(lake), "neuron_001")
    assert {r["pixels_mode"] for r in stack.provenance["slices"]} == {"reference"}
    np.testing.assert_array_equal(
        stack.window(z=slice(1, 4), y=slice(3, 60), x=slice(9, 70)),
        _raw(collection, "neuron_001")[1:4, 3:60, 9:70],
    )
    on_disk = sum(
        p.stat().st_size for p in (lake / "zstack_slices.lance").rglob("*") if p.is_file()
    )
    assert on_disk < 6 * 96 * 128 * 2 / 2  # the pixels stayed in the TIFFs


def test_ingested_blob_is_stored_at_raw_size(collection, tmp_path):
    """Blob v2 slices are stored as they are (not compressed): the lake holds ~ the raw bytes."""
    lake = tmp_path / "lake"
    _ingest(collection, lake, "neuron_001")
    raw = 6 * 96 * 128 * 2
    on_disk = sum(
        p.stat().st_size for p in (lake / "zstack_slices.lance").rglob("*") if p.is_file()
    )
    assert raw <= on_disk < raw * 1.5
