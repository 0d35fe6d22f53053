"""Frames above the blob threshold go to the blob column and read back (and verify) the same."""

import lance
import numpy as np

from imaging_assets.core.partition_write import write_partition
from imaging_assets.core.stores import LocalStore
from imaging_assets.demo.gallery.frames import write_ome
from imaging_assets.frames import reading, verify
from imaging_assets.frames.ingest import IngestSummary, frame_batches
from imaging_assets.frames.lake import dataset_partition, ingest_dataset, register_manifest
from imaging_assets.frames.schema import FRAMES, frames_schema
from imaging_assets.frames.splitters import open_frames
from imaging_assets_tests.frames.conftest import local_lake

DATASET = "BIG-2024-02-02-02-02-02-0002"


def test_big_frames_are_stored_as_blobs_and_read_back(tmp_path):
    array = np.random.default_rng(3).integers(0, 4096, (2, 2, 1, 64, 64), dtype=np.uint16)
    write_ome(tmp_path / "src" / "big.ome.tif", array, ["A", "B"])
    (tmp_path / "src" / "m.csv").write_text(
        f"dataset_id,file,upload_type\n{DATASET},big.ome.tif,frames\n"
    )
    lake = local_lake(tmp_path / "lake")
    source = LocalStore(tmp_path / "src")
    register_manifest(lake, source, "m.csv", "r1")
    ingest_dataset(lake, source, DATASET, "r2")  # registers the summary, small frames inline

    # the same frames again, with a threshold that sends every frame to the blob column
    uri = lake.uri("frames")
    summary = IngestSummary(DATASET)
    batches = frame_batches(
        DATASET, open_frames(tmp_path / "src" / "big.ome.tif"), "r3", summary, blob_threshold=1000
    )
    written = write_partition(
        lake, dataset_partition(FRAMES, DATASET), frames_schema(), batches, run_id="r3"
    )
    assert written.changed and written.rows == 4
    assert summary.blob_frames == 4
    stored = lance.dataset(uri).to_table(columns=["pixels"]).column("pixels").to_pylist()
    assert stored == [None] * 4
    np.testing.assert_array_equal(reading.read_frames(lake.root, DATASET), array)
    assert verify.verify_frames(lake.root).ok
