"""What frames.reading keeps between calls (table handles, frame directories, data-file readers)
never outlives the table version it was read at: a version written after a read is what the next
read returns, whichever way the newer version is noticed."""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from concurrent.futures import Future

import lance
import numpy as np
import pytest
from lance.file import LanceFileReader

from imaging_assets.core.partition_write import write_partition
from imaging_assets.core.stores import LocalStore
from imaging_assets.demo.gallery.frames import write_ome
from imaging_assets.frames import reading
from imaging_assets.frames.ingest import IngestSummary, frame_batches
from imaging_assets.frames.lake import dataset_partition, ingest_dataset, register_manifest
from imaging_assets.frames.schema import FRAMES, frames_schema
from imaging_assets.frames.splitters import open_frames
from imaging_assets.read import open_lake
from imaging_assets_tests.frames.conftest import local_lake

DATASET = "CACHE-2024-03-03-03-03-03-0003"


def frames(seed: int, z: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4096, (2, 2, z, 16, 24), dtype=np.uint16)


def make_lake(folder, array):
    """A lake with DATASET ingested from an OME-TIFF holding `array` (T, C, Z, Y, X)."""
    write_ome(folder / "src" / "d.ome.tif", array, ["A", "B"])
    (folder / "src" / "m.csv").write_text(
        f"dataset_id,file,upload_type\n{DATASET},d.ome.tif,frames\n"
    )
    lake = local_lake(folder / "lake")
    source = LocalStore(folder / "src")
    register_manifest(lake, source, "m.csv", "r1")
    ingest_dataset(lake, source, DATASET, "r2")
    return lake, source


def reingest(lake, source, folder, array) -> None:
    write_ome(folder / "src" / "d.ome.tif", array, ["A", "B"])
    result = ingest_dataset(lake, source, DATASET, "r3", max_removed_fraction=1.0)
    assert result.written.changed


def settle(lake) -> None:
    """Date the frames table's `_versions/` back, as if its last commit were long ago."""
    folder = os.path.join(lake.uri(FRAMES), "_versions")
    past = time.time_ns() - 60 * 10**9
    os.utime(folder, ns=(past, past))


@pytest.fixture(autouse=True)
def fresh_cache():
    reading.clear_cache()
    yield
    reading.clear_cache()


@pytest.mark.parametrize("settled", [False, True], ids=["just-written", "settled"])
def test_a_version_written_after_a_read_is_what_the_next_read_returns(tmp_path, settled):
    a, b = frames(1), frames(2)
    lake, source = make_lake(tmp_path, a)
    if settled:
        settle(lake)
    for _ in range(3):  # the first read fills the caches, the later ones use them
        np.testing.assert_array_equal(
            reading.read_frames(lake.root, DATASET, c=1, z=[0, 2]), a[:, [1]][:, :, [0, 2]]
        )
    directory = reading.frame_directory(lake.root, DATASET)
    assert reading.frame_directory(lake.root, DATASET) is directory  # kept between reads

    reingest(lake, source, tmp_path, b)
    np.testing.assert_array_equal(
        reading.read_frames(lake.root, DATASET, c=1, z=[0, 2]), b[:, [1]][:, :, [0, 2]]
    )
    np.testing.assert_array_equal(reading.read_frames(lake.root, DATASET), b)
    assert reading.frame_directory(lake.root, DATASET) is not directory
    rows = reading.frames_table(lake.root, DATASET, c=0, z=1, t=1)
    assert rows.column("sha256").to_pylist() == [hashlib.sha256(b[1, 0, 1].tobytes()).hexdigest()]


def test_a_settled_table_is_not_asked_for_its_versions_until_it_changes(tmp_path, monkeypatch):
    a, b = frames(3), frames(4)
    lake, source = make_lake(tmp_path, a)
    settle(lake)
    reading.read_frames(lake.root, DATASET, t=0)
    asked = []
    latest = lance.LanceDataset.latest_version
    monkeypatch.setattr(
        lance.LanceDataset,
        "latest_version",
        property(lambda ds: asked.append(1) or latest.fget(ds)),
    )
    for _ in range(3):
        np.testing.assert_array_equal(reading.read_frames(lake.root, DATASET, t=0), a[[0]])
    assert asked == []  # an unchanged, settled `_versions/` answered: no listing of versions

    reingest(lake, source, tmp_path, b)
    np.testing.assert_array_equal(reading.read_frames(lake.root, DATASET, t=0), b[[0]])


def test_a_reingest_with_fewer_slices_changes_sizes_and_selections(tmp_path):
    a = frames(5)
    lake, source = make_lake(tmp_path, a)
    assert reading.read_frames(lake.root, DATASET).shape == a.shape
    assert reading.select(lake.root, DATASET).z == [0, 1, 2]

    fewer = frames(6, z=2)
    reingest(lake, source, tmp_path, fewer)
    np.testing.assert_array_equal(reading.read_frames(lake.root, DATASET), fewer)
    assert reading.select(lake.root, DATASET).z == [0, 1]
    with pytest.raises(ValueError, match="out of range"):
        reading.read_frames(lake.root, DATASET, z=2)
    assert reading.frames_table(lake.root, DATASET).num_rows == fewer[..., 0, 0].size


def test_a_table_deleted_and_made_again_at_the_same_place_is_read_anew(tmp_path):
    a, b = frames(7), frames(8)
    lake, _ = make_lake(tmp_path, a)
    np.testing.assert_array_equal(reading.read_frames(lake.root, DATASET), a)
    version = lance.dataset(lake.uri(FRAMES)).version
    shutil.rmtree(tmp_path / "lake")
    shutil.rmtree(tmp_path / "src")
    lake, _ = make_lake(tmp_path, b)
    assert lance.dataset(lake.uri(FRAMES)).version == version  # same version number, new table
    np.testing.assert_array_equal(reading.read_frames(lake.root, DATASET), b)


def test_reads_through_the_data_file_and_through_lance_take_agree(tmp_path, monkeypatch):
    a = frames(9)
    lake, _ = make_lake(tmp_path, a)
    expected = a[[1]][:, :, [1, 2]]
    first = reading.read_frames(lake.root, DATASET, t=1, z=[1, 2])  # Lance take
    snapshot = reading._snapshot(lake.root, FRAMES, None)  # noqa: SLF001
    (opening,) = snapshot.readers.values()  # the data file's reader, opened in the background
    assert isinstance(opening, Future)
    assert isinstance(opening.result(timeout=60), LanceFileReader)
    later = reading.read_frames(lake.root, DATASET, t=1, z=[1, 2])  # through that reader
    assert list(snapshot.readers.values()) == [opening.result()]
    monkeypatch.setattr(reading, "_file_reader", lambda *args: None)
    fallback = reading.read_frames(lake.root, DATASET, t=1, z=[1, 2])  # Lance take again
    for array in (first, later, fallback):
        np.testing.assert_array_equal(array, expected)


def test_blob_frames_read_the_same_on_every_read(tmp_path):
    a = frames(10)
    lake, _ = make_lake(tmp_path, a)
    b = frames(11)
    write_ome(tmp_path / "src" / "d.ome.tif", b, ["A", "B"])
    summary = IngestSummary(DATASET)
    batches = frame_batches(
        DATASET, open_frames(tmp_path / "src" / "d.ome.tif"), "r3", summary, blob_threshold=100
    )
    written = write_partition(
        lake, dataset_partition(FRAMES, DATASET), frames_schema(), batches, run_id="r3"
    )
    assert written.changed and summary.blob_frames == b[..., 0, 0].size
    for _ in range(3):
        np.testing.assert_array_equal(reading.read_frames(lake.root, DATASET, c=0), b[:, [0]])


def test_the_read_api_sees_a_newer_version(tmp_path):
    a, b = frames(12), frames(13)
    lake, source = make_lake(tmp_path, a)
    handle = open_lake(lake.root)
    np.testing.assert_array_equal(handle.frames(DATASET, c="B", t=0), a[[0]][:, [1]])
    reingest(lake, source, tmp_path, b)
    np.testing.assert_array_equal(handle.frames(DATASET, c="B", t=0), b[[0]][:, [1]])


def test_an_unknown_selector_is_an_error_not_ignored(tmp_path):
    lake, _ = make_lake(tmp_path, frames(14))
    with pytest.raises(TypeError, match="unknown frame selectors"):
        reading.frames_table(lake.root, DATASET, channel=1)
