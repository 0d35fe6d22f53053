"""site_stacks: every codec, straight from Arrow buffers, in threads, also after a fork."""

from __future__ import annotations

import multiprocessing

import numpy as np
import pyarrow as pa
import pytest

from imaging_assets.jump.images import decoding
from imaging_assets.jump.images.decoding import site_stacks
from imaging_assets.processing import encode_pixels

CHANNELS = ("DNA", "AGP")


def _table(arrays: list[np.ndarray], codecs: list[str | None], with_codec: bool = True):
    """Rows of two channels: channel AGP holds the array + 1, so the channels differ."""
    columns: dict[str, list] = {"site_key": [f"k{i}" for i in range(len(arrays))]}
    for offset, channel in enumerate(("dna", "agp")):
        encoded = [
            encode_pixels(a + offset, c or "raw") for a, c in zip(arrays, codecs, strict=True)
        ]
        columns[f"{channel}_pixels"] = pa.array([e.data for e in encoded], pa.large_binary())
        columns[f"{channel}_shape"] = [list(a.shape) for a in arrays]
        columns[f"{channel}_dtype"] = [str(a.dtype) for a in arrays]
        if with_codec:
            columns[f"{channel}_codec"] = [
                e.codec if c else None for e, c in zip(encoded, codecs, strict=True)
            ]
    return pa.table(columns)


def _images(n: int, shape=(40, 52), dtype=np.uint16) -> list[np.ndarray]:
    rng = np.random.default_rng(n)
    return [(np.cumsum(rng.integers(0, 9, shape), axis=1) % 4000).astype(dtype) for _ in range(n)]


@pytest.mark.parametrize("with_codec", [True, False])
def test_every_codec_decodes_into_one_array_in_row_and_channel_order(with_codec):
    arrays = _images(4)
    table = _table(arrays, ["pzstd/1", "zstd/1", "raw/1", None], with_codec)
    stacks = site_stacks(table, CHANNELS)
    assert stacks.shape == (4, 2, 40, 52) and stacks.dtype == np.uint16
    for row, array in enumerate(arrays):
        assert np.array_equal(stacks[row, 0], array)
        assert np.array_equal(stacks[row, 1], array + 1)
    assert np.array_equal(site_stacks(table.slice(2, 2), CHANNELS)[1, 1], arrays[3] + 1)


def test_threads_and_one_thread_agree(monkeypatch):
    table = _table(_images(6, (64, 64), np.uint8), ["pzstd/1"] * 6)
    threaded = site_stacks(table, CHANNELS)
    monkeypatch.setattr(decoding, "decode_threads", lambda: 1)
    assert np.array_equal(site_stacks(table, CHANNELS), threaded)


def test_sites_of_different_shapes_or_missing_pixels_are_refused_by_name():
    table = pa.concat_tables(
        [_table(_images(1), ["pzstd/1"]), _table(_images(1, (40, 50)), ["pzstd/1"])]
    )
    with pytest.raises(ValueError, match=r"dna of site 1 is \(40, 50\)"):
        site_stacks(table, CHANNELS)
    table = _table(_images(2), ["pzstd/1", "pzstd/1"])
    nulls = table.set_column(
        table.schema.get_field_index("agp_pixels"),
        "agp_pixels",
        pa.array([b"x", None], pa.large_binary()),
    )
    with pytest.raises(ValueError, match="site 1 of the read has no agp_pixels"):
        site_stacks(nulls, CHANNELS)


def _decode_in_child(table: pa.Table, queue) -> None:
    queue.put(site_stacks(table, CHANNELS).sum())


@pytest.mark.filterwarnings("ignore:lance is not fork-safe")
def test_a_forked_process_gets_its_own_decode_threads():
    """A DataLoader forks its workers after the parent has read: the parent's pool threads do
    not exist in the child, so using the parent's pool there would wait forever."""
    if decoding.decode_threads() == 1:
        pytest.skip("one core: no decode pool")
    table = _table(_images(4, (64, 64), np.uint8), ["pzstd/1"] * 4)
    expected = site_stacks(table, CHANNELS).sum()  # the parent's pool now exists
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=_decode_in_child, args=(table, queue))
    child.start()
    child.join(timeout=20)
    if child.is_alive():
        child.kill()
        pytest.fail("decoding in a forked child hung on the parent's thread pool")
    assert queue.get(timeout=5) == expected
