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


def _sheet_row(key: str, well: str, role: str, value: int = 0) -> dict:
    pixels = ((np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) + value) % 251).astype(np.uint8)
    row = {"site_key": key, "well": well, "site": key.rsplit("__", 1)[1], "control_role": role}
    for c in ("dna", "agp"):
        row |= {f"{c}_pixels": pixels.tobytes(), f"{c}_shape": [64, 64], f"{c}_dtype": "uint8"}
    return row


def test_contact_sheet_columns_are_sites_under_legible_headers_rows_are_channels():
    """A black header with white text over each site's column (role, well and site), a black
    band with the channel name left of each row; small images are centred in 128 px columns."""
    from PIL import Image

    from imaging_assets.jump.images.contact_sheet import (
        CHANNEL_LABEL_WIDTH,
        GAP,
        LABEL_HEIGHT,
        LINE_HEIGHT,
        contact_sheet,
    )

    rows = [_sheet_row("s__P__A01__1", "A01", "poscon"), _sheet_row("s__P__B02__1", "B02", "trt")]
    sheet = np.asarray(
        Image.open(io.BytesIO(contact_sheet(pa.Table.from_pylist(rows), ["DNA", "AGP"])))
    )
    width = CHANNEL_LABEL_WIDTH + GAP + 128 + 12 + 128  # roles apart by the wider ROLE_GAP
    assert sheet.shape == (LABEL_HEIGHT + 2 * 64, width)
    assert LINE_HEIGHT >= 18  # text of ~15 px, not PIL's 8 px bitmap font
    first = sheet[:LABEL_HEIGHT, CHANNEL_LABEL_WIDTH + GAP : CHANNEL_LABEL_WIDTH + GAP + 128]
    for band in (first, sheet[LABEL_HEIGHT : LABEL_HEIGHT + 64, :CHANNEL_LABEL_WIDTH]):
        assert (band > 128).sum() > 30 and (band == 0).mean() > 0.5  # text on black
    assert (first[LINE_HEIGHT:] > 128).sum() > 30  # the second line: well and site
    left = CHANNEL_LABEL_WIDTH + GAP + 32  # a 64 px image centred in its 128 px column
    expected = np.frombuffer(rows[0]["dna_pixels"], np.uint8).reshape(64, 64)
    assert np.array_equal(sheet[LABEL_HEIGHT : LABEL_HEIGHT + 64, left : left + 64], expected)


def test_contact_sheet_sites_spread_over_roles_and_wells_flagged_last():
    from imaging_assets.jump.images.contact_sheet import choose_sites

    keys, wells, roles = [], [], []
    for role, prefix in (("trt", "A"), ("poscon", "B"), ("negcon", "C"), ("empty", "D")):
        for well in range(1, 4):
            for site in (1, 2):
                keys.append(f"s__P__{prefix}{well:02d}__{site}")
                wells.append(f"{prefix}{well:02d}")
                roles.append(role)
    chosen = choose_sites(keys, wells, roles, 6, flagged=["s__P__B01__1"])
    assert chosen == [
        "s__P__B01__2",  # poscon: B01's other site, the flagged one last
        "s__P__B02__1",
        "s__P__C01__1",  # negcon
        "s__P__C02__1",
        "s__P__A01__1",  # trt
        "s__P__D01__1",  # then other roles
    ]
    assert choose_sites(keys, wells, roles, 3) == ["s__P__B01__1", "s__P__C01__1", "s__P__A01__1"]
    assert len(choose_sites(keys[:2], wells[:2], roles[:2], 6)) == 2
    # deterministic whatever the order the rows come in
    order = np.random.default_rng(1).permutation(len(keys))
    shuffled = [[x[i] for i in order] for x in (keys, wells, roles)]
    assert choose_sites(*shuffled, 6, flagged=["s__P__B01__1"]) == chosen


def test_the_contact_sheet_marks_a_flagged_site():
    from PIL import Image

    from imaging_assets.jump.images.contact_sheet import CHANNEL_LABEL_WIDTH, LABEL_HEIGHT

    rows = pa.Table.from_pylist([_sheet_row("s__P__A01__1", "A01", "trt")])
    plain = np.asarray(Image.open(io.BytesIO(contact_sheet(rows, ["DNA"]))))
    flagged = np.asarray(
        Image.open(io.BytesIO(contact_sheet(rows, ["DNA"], flagged=["s__P__A01__1"])))
    )
    header = slice(0, LABEL_HEIGHT), slice(CHANNEL_LABEL_WIDTH, None)
    assert (flagged[header] > 128).sum() > (plain[header] > 128).sum() + 30  # "(flagged)"


def test_rows_carry_cellprofilers_quality_features_of_the_raw_pixels(tmp_path):
    """Measured on the raw image as decoded (not the recipe's crop): each planned feature equals
    processing.quality.measure's, the others are null, the metric set and scale are named."""
    from imaging_assets.jump.quality import MetricPlan
    from imaging_assets.jump.schemas import quality_column
    from imaging_assets.processing.quality import FEATURES, measure

    plan = MetricPlan({"PowerLogLogSlope": ("DNA",), "PercentMaximal": ("*",)})
    result = _run(_plate(tmp_path, sites=3), quality=plan)
    table = pa.Table.from_batches(list(result.batches()), schema=site_images_schema(CHANNELS))
    for row in table.to_pylist():
        assert row["qc_metric_set"] == "cellprofiler.MeasureImageQuality/1"
        assert row["qc_scale"] == 65535.0
        for channel in CHANNELS:
            raw = tifffile.imread(row[f"{channel.lower()}_raw_uri"])  # 64 x 64, uncropped
            expected = measure(raw)
            for feature in FEATURES:
                value = row[quality_column(feature, channel)]
                if feature in plan.features(channel):
                    assert value == expected[feature], (channel, feature)
                else:
                    assert value is None, (channel, feature)
    assert result.quality_seconds > 0


def test_without_a_plan_the_quality_columns_stay_null(tmp_path):
    result = _run(_plate(tmp_path, sites=2), quality=None)
    row = pa.Table.from_batches(list(result.batches())).to_pylist()[0]
    assert row["qc_metric_set"] is None and row["qc_scale"] is None
    assert row["ImageQuality_PowerLogLogSlope_OrigDNA"] is None
    assert result.quality_seconds == 0


def test_the_default_plan_measures_every_channel(tmp_path):
    result = _run(_plate(tmp_path, sites=1))
    row = pa.Table.from_batches(list(result.batches())).to_pylist()[0]
    assert row["ImageQuality_PowerLogLogSlope_OrigDNA"] is not None
    assert row["ImageQuality_PercentMaximal_OrigRNA"] is not None
    assert row["ImageQuality_PowerLogLogSlope_OrigRNA"] is None  # DNA only by default
