"""The image stream against hostile or inconsistent inputs: bombs, wrong sizes and dtypes, many
failures, mirrors, and objects that are not images."""

from __future__ import annotations

import io
import random
import re
import threading
import time
import tracemalloc
from pathlib import Path

import lance
import numpy as np
import pyarrow as pa
import pytest
import tifffile

from imaging_assets.core.errors import MissingObjectError
from imaging_assets.core.objects import FetchedObject
from imaging_assets.jump.images import TooManyFailures, process_sites, site_tasks_from_table
from imaging_assets.jump.schemas import site_images_schema
from imaging_assets.processing import get_recipe
from imaging_assets_tests.lakes import write_plate

CHANNELS = ["DNA", "RNA"]
CANONICAL = "s3://cellpainting-gallery/cpg0016-jump/source_1/images/b/images/P1"
SECRET = "TOPSECRETVALUE42-hunter2"


def _tiff(seed: int, size: int | tuple[int, int] = 64, dtype=np.uint16) -> bytes:
    shape = (size, size) if isinstance(size, int) else size
    rng = np.random.default_rng(seed)
    image = rng.integers(100, 250 if dtype == np.uint8 else 5000, shape).astype(dtype)
    sink = io.BytesIO()
    tifffile.imwrite(sink, image, compression="zlib")
    return sink.getvalue()


def _bomb(size: int = 9000) -> bytes:
    sink = io.BytesIO()
    tifffile.imwrite(sink, np.zeros((size, size), np.uint16), compression="zlib")
    return sink.getvalue()


def _plate(folder: Path, sites: int = 6, size: int = 64) -> pa.Table:
    """A plate whose load_data names the bucket; the objects sit in a local mirror (folder)."""
    rows = []
    for n in range(sites):
        for c, channel in enumerate(CHANNELS):
            name = f"s{n:02d}_{channel}.tiff"
            (folder / name).write_bytes(_tiff(10 * n + c, size))
            rows.append(
                {
                    "source": "source_1",
                    "batch": "b",
                    "plate": "P1",
                    "well": "A01",
                    "site": str(n),
                    "channel": channel,
                    "uri": str(folder / name),
                    "load_data_uri": f"{CANONICAL}/{name}",
                    "illum_uri": None,
                    "site_key": f"source_1__P1__A01__{n:02d}",
                    "control_role": "trt",
                }
            )
    return pa.Table.from_pylist(rows)


class Reader:
    """Reads local files, optionally with a random delay (to shuffle completion order)."""

    def __init__(self, jitter: float = 0.0, seed: int = 0) -> None:
        self.jitter = jitter
        self.random = random.Random(seed)
        self.lock = threading.Lock()

    def __call__(self, uri: str) -> FetchedObject:
        if self.jitter:
            with self.lock:
                delay = self.random.random() * self.jitter
            time.sleep(delay)
        path = Path(uri)
        if not path.exists():
            raise MissingObjectError(uri)
        return FetchedObject(uri, path.read_bytes(), etag=None)


def _run(table: pa.Table, reader=None, workers: int = 2, **kwargs):
    return process_sites(
        site_tasks_from_table(table, CHANNELS),
        reader or Reader(),
        recipe=get_recipe("raw"),
        channels=CHANNELS,
        workers=workers,
        run_id="run-1",
        batch_rows=2,
        **kwargs,
    )


def _consume(result) -> pa.Table:
    return pa.Table.from_batches(list(result.batches()), schema=site_images_schema(CHANNELS))


def _kinds(result) -> dict[str, str]:
    return {f["failure_key"]: f["error_kind"] for f in result.failures}


# -- 1. decompression bombs -------------------------------------------------------------------


@pytest.mark.parametrize("configured", [True, False])
def test_a_bomb_in_a_plate_is_rejected_from_its_header(tmp_path, configured):
    table = _plate(tmp_path, sites=4)
    (tmp_path / "s02_DNA.tiff").write_bytes(_bomb())  # 9000 x 9000 uint16 = 162 MB decoded
    kwargs = {"expected_shape": (64, 64)} if configured else {}
    result = _run(table, max_failed_fraction=1.0, **kwargs)
    tracemalloc.start()
    try:
        written = _consume(result)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert written.num_rows == 3
    assert _kinds(result) == {"source_1__P1__A01__02__DNA": "wrong_size"}
    message = result.failures[0]["message"]
    assert "(9000, 9000)" in message and "(64, 64)" in message
    assert peak < 32 * 2**20, f"peak {peak / 2**20:.0f} MiB: the bomb was decoded"


# -- 2. a plate's expected size and dtype -----------------------------------------------------


def test_every_channel_of_a_site_at_a_wrong_but_equal_size_fails(tmp_path):
    table = _plate(tmp_path)
    for channel in CHANNELS:
        (tmp_path / f"s03_{channel}.tiff").write_bytes(_tiff(7, 48))
    result = _run(table, max_failed_fraction=1.0)
    assert _consume(result).num_rows == 5
    assert _kinds(result) == {
        "source_1__P1__A01__03__DNA": "wrong_size",
        "source_1__P1__A01__03__RNA": "wrong_size",
    }
    assert all("(48, 48)" in f["message"] and "(64, 64)" in f["message"] for f in result.failures)


def test_a_configured_shape_wins_over_the_data(tmp_path):
    table = _plate(tmp_path, sites=3)
    result = _run(table, max_failed_fraction=1.0, expected_shape=(48, 48))
    assert _consume(result).num_rows == 0
    assert set(_kinds(result).values()) == {"wrong_size"} and len(result.failures) == 6


def test_the_reference_is_the_majority_of_the_first_sites_whatever_the_thread_order(tmp_path):
    table = _plate(tmp_path, sites=8)
    for channel in CHANNELS:  # the very first site is the odd one out
        (tmp_path / f"s00_{channel}.tiff").write_bytes(_tiff(3, 48))
    (tmp_path / "s05_RNA.tiff").write_bytes(_tiff(4, 56))
    outcomes = set()
    for seed in range(4):
        result = _run(table, reader=Reader(0.01, seed), workers=4, max_failed_fraction=1.0)
        keys = tuple(_consume(result)["site_key"].to_pylist())
        outcomes.add((keys, tuple(sorted(_kinds(result).items()))))
    assert len(outcomes) == 1
    keys, kinds = outcomes.pop()
    assert len(keys) == 6
    assert dict(kinds) == {
        "source_1__P1__A01__00__DNA": "wrong_size",
        "source_1__P1__A01__00__RNA": "wrong_size",
        "source_1__P1__A01__05__RNA": "wrong_size",
    }


def test_float_images_and_other_dtypes_are_wrong_dtype(tmp_path):
    table = _plate(tmp_path)
    floats = np.random.default_rng(1).random((64, 64)).astype(np.float32)
    floats[0, 0] = np.nan
    tifffile.imwrite(tmp_path / "s01_DNA.tiff", floats)
    tifffile.imwrite(tmp_path / "s01_RNA.tiff", np.full((64, 64), np.inf, np.float32))
    (tmp_path / "s04_RNA.tiff").write_bytes(_tiff(5, 64, np.uint8))
    result = _run(table, max_failed_fraction=1.0)
    assert _consume(result).num_rows == 4
    assert _kinds(result) == {
        "source_1__P1__A01__01__DNA": "wrong_dtype",
        "source_1__P1__A01__01__RNA": "wrong_dtype",
        "source_1__P1__A01__04__RNA": "wrong_dtype",
    }
    by_key = {f["failure_key"]: f["message"] for f in result.failures}
    assert "uint8" in by_key["source_1__P1__A01__04__RNA"]
    assert "uint16" in by_key["source_1__P1__A01__04__RNA"]
    assert "float32" in by_key["source_1__P1__A01__01__DNA"]


def test_float_is_accepted_only_when_configured_and_then_must_be_finite(tmp_path):
    table = _plate(tmp_path, sites=2)
    for n in range(2):
        for channel in CHANNELS:
            image = np.random.default_rng(n).random((64, 64)).astype(np.float32)
            tifffile.imwrite(tmp_path / f"s{n:02d}_{channel}.tiff", image)
    result = _run(table, max_failed_fraction=1.0, expected_dtype="float32")
    assert _consume(result).num_rows == 2
    image[1, 1] = np.nan
    tifffile.imwrite(tmp_path / "s01_RNA.tiff", image)
    result = _run(table, max_failed_fraction=1.0, expected_dtype="float32")
    assert _consume(result).num_rows == 1
    assert _kinds(result) == {"source_1__P1__A01__01__RNA": "non_finite"}


# -- 3. every failure counted -----------------------------------------------------------------


def test_every_failure_is_recorded_and_counted_before_the_plate_is_rejected(tmp_path):
    table = _plate(tmp_path, sites=13)
    uri = str(tmp_path / "site_images.lance")
    schema = site_images_schema(CHANNELS)
    write_plate(tmp_path, "site_images", "source_1__P1", schema, _run(table).batches())
    before = lance.dataset(uri)

    (tmp_path / "s02_DNA.tiff").unlink()  # missing
    (tmp_path / "s05_RNA.tiff").write_bytes(b"")  # empty
    (tmp_path / "s09_DNA.tiff").write_bytes(b"II*\x00 not a tiff")  # corrupt ...
    (tmp_path / "s09_RNA.tiff").write_bytes(b"")  # ... and empty: both recorded
    result = _run(table, max_failed_fraction=0.0)
    with pytest.raises(TooManyFailures) as caught:
        write_plate(tmp_path, "site_images", "source_1__P1", schema, result.batches())
    message = str(caught.value)
    assert "3 of 13 sites failed" in message
    assert "empty: 2" in message and "missing: 1" in message and "corrupt: 1" in message
    assert _kinds(result) == {
        "source_1__P1__A01__02__DNA": "missing",
        "source_1__P1__A01__05__RNA": "empty",
        "source_1__P1__A01__09__DNA": "corrupt",
        "source_1__P1__A01__09__RNA": "empty",
    }
    assert result.sites_failed == 3 and result.failures_table().num_rows == 4
    after = lance.dataset(uri)
    assert (after.version, after.count_rows()) == (before.version, 13)


# -- 4. canonical provenance ------------------------------------------------------------------


def test_rows_and_failures_name_the_canonical_uri_and_where_it_was_read(tmp_path):
    table = _plate(tmp_path, sites=3)
    tasks = site_tasks_from_table(table, CHANNELS)
    assert tasks[0].channels[0].raw_uri == f"{CANONICAL}/s00_DNA.tiff"
    assert tasks[0].channels[0].uri == str(tmp_path / "s00_DNA.tiff")
    (tmp_path / "s01_RNA.tiff").write_bytes(b"")
    result = _run(table, max_failed_fraction=1.0)
    row = _consume(result).to_pylist()[0]
    assert row["dna_raw_uri"] == f"{CANONICAL}/s00_DNA.tiff"
    assert row["dna_read_uri"] == str(tmp_path / "s00_DNA.tiff")
    failure = result.failures_table().to_pylist()[0]
    assert failure["uri"] == f"{CANONICAL}/s01_RNA.tiff"
    assert failure["read_uri"] == str(tmp_path / "s01_RNA.tiff")
    assert str(tmp_path) not in failure["message"]


def test_without_load_data_uri_the_read_uri_is_the_raw_uri(tmp_path):
    table = _plate(tmp_path, sites=1).drop_columns(["load_data_uri"])
    row = _consume(_run(table)).to_pylist()[0]
    assert row["dna_raw_uri"] == row["dna_read_uri"] == str(tmp_path / "s00_DNA.tiff")


# -- 5. object bytes never reach a message ----------------------------------------------------


@pytest.mark.parametrize(
    "content", [SECRET.encode() + b"\n", b"II*\x00" + SECRET.encode(), b"II+\x00" + SECRET.encode()]
)
def test_failure_messages_never_hold_object_bytes(tmp_path, content):
    table = _plate(tmp_path, sites=2)
    (tmp_path / "s01_DNA.tiff").write_bytes(content)  # e.g. load_data naming /etc/hostname
    result = _run(table, max_failed_fraction=1.0)
    _consume(result)
    (failure,) = result.failures
    assert failure["error_kind"] == "corrupt"
    for start in range(len(SECRET) - 3):
        assert SECRET[start : start + 4] not in failure["message"], failure["message"]
    assert not re.search(r"\d", failure["message"].split(": corrupt: ")[1]), failure["message"]
    assert failure["message"].startswith(f"{CANONICAL}/s01_DNA.tiff: corrupt: ")
