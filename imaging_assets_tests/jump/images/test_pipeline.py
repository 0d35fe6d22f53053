"""The image stream on synthetic TIFFs: provenance, order, failures, tolerance, bounded memory."""

from __future__ import annotations

import hashlib
import io
import json
import threading
import time
from pathlib import Path

import lance
import numpy as np
import pyarrow as pa
import pytest
import tifffile

from imaging_assets.core.errors import MissingObjectError
from imaging_assets.core.objects import FetchedObject
from imaging_assets.jump.images import (
    TooManyFailures,
    contact_sheet,
    process_sites,
    site_array,
    site_tasks_from_table,
)
from imaging_assets.jump.schemas import site_images_schema
from imaging_assets.processing import get_recipe
from imaging_assets_tests.lakes import write_plate

CHANNELS = ["DNA", "RNA"]


def _tiff(seed: int, size: int = 64) -> bytes:
    image = np.random.default_rng(seed).integers(100, 5000, (size, size), dtype=np.uint16)
    sink = io.BytesIO()
    tifffile.imwrite(sink, image, compression="lzw")
    return sink.getvalue()


def _plate(tmp_path: Path, sites: int = 6) -> pa.Table:
    rows = []
    for n in range(sites):
        for c, channel in enumerate(CHANNELS):
            path = tmp_path / f"s{n}_{channel}.tiff"
            path.write_bytes(_tiff(10 * n + c))
            rows.append(
                {
                    "source": "source_1",
                    "batch": "b",
                    "plate": "P1",
                    "well": "A01",
                    "site": str(n),
                    "channel": channel,
                    "uri": str(path),
                    "illum_uri": None,
                    "site_key": f"source_1__P1__A01__{n}",
                    "jcp2022": "JCP2022_000001",
                    "control_role": "trt",
                    "plate_type": "COMPOUND",
                }
            )
    return pa.Table.from_pylist(rows[::-1])  # reversed: the stream must sort


class Reader:
    """Reads local files; counts concurrent calls."""

    def __init__(self, delay: float = 0.0) -> None:
        self.active = 0
        self.peak = 0
        self.delay = delay
        self.lock = threading.Lock()

    def __call__(self, uri: str) -> FetchedObject:
        with self.lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            time.sleep(self.delay)
            path = Path(uri)
            if not path.exists():
                raise MissingObjectError(uri)
            return FetchedObject(uri, path.read_bytes(), etag='"abc"')
        finally:
            with self.lock:
                self.active -= 1


def _run(table, reader=None, **kwargs):
    tasks = site_tasks_from_table(table, CHANNELS)
    result = process_sites(
        tasks,
        reader or Reader(),
        recipe=get_recipe("robust_8bit_crop", {"crop": 32}),
        channels=CHANNELS,
        workers=2,
        run_id="run-1",
        batch_rows=2,
        **kwargs,
    )
    return result


def test_rows_carry_provenance_in_site_order(tmp_path):
    result = _run(_plate(tmp_path))
    table = pa.Table.from_batches(list(result.batches()), schema=site_images_schema(CHANNELS))
    assert table["site_key"].to_pylist() == sorted(table["site_key"].to_pylist())
    row = table.to_pylist()[0]
    raw = Path(row["dna_raw_uri"]).read_bytes()
    assert row["dna_raw_md5"] == hashlib.md5(raw).hexdigest()
    assert row["dna_raw_sha256"] == hashlib.sha256(raw).hexdigest()
    assert row["dna_raw_size"] == len(raw) and row["dna_raw_etag"] == '"abc"'
    assert row["dna_shape"] == [32, 32] and row["dna_dtype"] == "uint8"
    assert row["dna_crop_offset"] == [16, 16] and row["dna_raw_shape"] == [64, 64]
    assert row["dna_low"] < row["dna_high"]
    assert json.loads(row["recipe_params"]) == {"crop": 32, "percentile": 1.0}
    assert row["dagster_run_id"] == "run-1" and row["control_role"] == "trt"
    assert (result.sites_ok, result.images) == (6, 12)
    assert contact_sheet(table, CHANNELS, n_sites=2).startswith(b"\x89PNG")


def test_failures_are_recorded_by_kind_within_tolerance(tmp_path):
    table = _plate(tmp_path)
    (tmp_path / "s0_DNA.tiff").unlink()  # missing
    (tmp_path / "s1_RNA.tiff").write_bytes(b"")  # empty
    (tmp_path / "s2_DNA.tiff").write_bytes(_tiff(99)[:200])  # truncated
    (tmp_path / "s3_RNA.tiff").write_bytes(_tiff(98, size=48))  # wrong size vs its other channel
    result = _run(table, max_failed_fraction=0.9)
    written = pa.Table.from_batches(list(result.batches()), schema=site_images_schema(CHANNELS))
    assert written.num_rows == 2
    failures = result.failures_table()
    kinds = dict(
        zip(failures["site_key"].to_pylist(), failures["error_kind"].to_pylist(), strict=True)
    )
    assert kinds == {
        "source_1__P1__A01__0": "missing",
        "source_1__P1__A01__1": "empty",
        "source_1__P1__A01__2": "corrupt",
        "source_1__P1__A01__3": "wrong_size",
    }


def test_over_tolerance_raises_inside_the_stream_and_nothing_is_written(tmp_path):
    table = _plate(tmp_path)
    uri = str(tmp_path / "site_images.lance")
    schema = site_images_schema(CHANNELS)
    write_plate(tmp_path, "site_images", "source_1__P1", schema, _run(table).batches())
    before = lance.dataset(uri)
    (tmp_path / "s4_DNA.tiff").write_bytes(b"")
    with pytest.raises(TooManyFailures, match="empty"):
        write_plate(
            tmp_path,
            "site_images",
            "source_1__P1",
            schema,
            _run(table, max_failed_fraction=0.0).batches(),
        )
    after = lance.dataset(uri)
    assert (after.version, after.count_rows()) == (before.version, 6)


def test_sites_in_flight_stay_bounded(tmp_path):
    reader = Reader(delay=0.01)
    result = _run(_plate(tmp_path, sites=20), reader=reader)
    consumed = 0
    for batch in result.batches():
        consumed += batch.num_rows
    assert consumed == 20
    assert result.max_in_flight <= result.window == 4
    assert reader.peak <= 2  # workers


def test_a_site_missing_a_channel_is_an_error(tmp_path):
    table = _plate(tmp_path)
    only_dna = table.filter(pa.compute.equal(table["channel"], "DNA"))
    with pytest.raises(ValueError, match="RNA"):
        site_tasks_from_table(only_dna, CHANNELS)


def test_the_frame_named_by_load_data_is_the_page_decoded(tmp_path):
    table = _plate(tmp_path, sites=1)
    stack = tmp_path / "stack.tiff"
    pages = [np.full((64, 64), value, np.uint16) for value in (100, 200, 300)]
    sink = io.BytesIO()
    with tifffile.TiffWriter(sink) as writer:
        for page in pages:
            writer.write(page, compression="lzw")
    stack.write_bytes(sink.getvalue())
    rows = table.to_pylist()
    for row in rows:
        row["uri"], row["frame"] = str(stack), 2
    tasks = site_tasks_from_table(pa.Table.from_pylist(rows), CHANNELS)
    result = process_sites(
        tasks, Reader(), recipe=get_recipe("raw"), channels=CHANNELS, workers=1, run_id="r"
    )
    row = pa.Table.from_batches(list(result.batches())).to_pylist()[0]
    assert row["dna_codec"] == "zstd/1"  # the raw recipe's default
    assert site_array(row, "DNA").max() == 300


def test_contact_sheet_rows_and_tiles_carry_label_bands():
    """Each site row starts with a black band with text (site key, role), each tile too (channel)."""
    import io

    import numpy as np
    import pyarrow as pa
    from PIL import Image

    from imaging_assets.jump.images.contact_sheet import LABEL_HEIGHT, contact_sheet

    pixels = (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) % 251).astype(np.uint8)
    row = {"site_key": "source_4__P1__A01__1", "control_role": "poscon"}
    for c in ("dna", "agp"):
        row |= {f"{c}_pixels": pixels.tobytes(), f"{c}_shape": [64, 64], f"{c}_dtype": "uint8"}
    sheet = np.asarray(
        Image.open(io.BytesIO(contact_sheet(pa.Table.from_pylist([row]), ["DNA", "AGP"])))
    )
    assert sheet.shape == (64 + 2 * LABEL_HEIGHT, 128)
    site_band, channel_band = sheet[:LABEL_HEIGHT], sheet[LABEL_HEIGHT : 2 * LABEL_HEIGHT]
    for band in (site_band, channel_band[:, :64], channel_band[:, 64:]):
        assert (band > 128).sum() > 10 and (band == 0).mean() > 0.5  # text on black
    assert (site_band[:, 64:] > 128).sum() > 10  # the site key runs across the row
