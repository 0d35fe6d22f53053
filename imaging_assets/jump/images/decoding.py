"""Site rows (as Lance hands them back) to pixel arrays: zero-copy, every codec, channels in parallel.

Reading a site is dominated by decoding its channels (bench_reads.py), so the cells are decoded
straight from the Arrow buffers Lance returned (no Python bytes copy of each cell) and the cells
of a read are spread over a small thread pool: zstd and numpy's array work release the GIL, so two
threads on two cores decode a 5-channel site in about 0.7 of the sequential time.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pyarrow as pa

from imaging_assets.jump.schemas import channel_prefix
from imaging_assets.processing.codecs import decode

MAX_DECODE_THREADS = 4  # more than this measured no faster: the cells of one read are few

_pool: ThreadPoolExecutor | None = None
_pool_pid: int | None = None
_pool_lock = threading.Lock()


def decode_threads() -> int:
    """Threads for decoding: the cores this process may use, at most MAX_DECODE_THREADS."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(MAX_DECODE_THREADS, cores or 1))


def _decode_pool() -> ThreadPoolExecutor | None:
    """One pool per process (a forked DataLoader worker gets its own), None on one core."""
    global _pool, _pool_pid
    if decode_threads() == 1:
        return None
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool = ThreadPoolExecutor(decode_threads(), thread_name_prefix="decode-pixels")
            _pool_pid = os.getpid()
        return _pool


def _cells(column: pa.ChunkedArray | pa.Array) -> list[memoryview | None]:
    """The binary cells of a column as memoryviews on Arrow's own buffer (no copies)."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if array.type not in (pa.binary(), pa.large_binary()):
        raise TypeError(f"pixel cells must be binary, the column is {array.type}")
    _, offsets, data = array.buffers()
    ends = np.frombuffer(offsets, dtype=np.int64 if array.type == pa.large_binary() else np.int32)
    ends = ends[array.offset : array.offset + len(array) + 1]
    view = memoryview(data).cast("B") if data is not None else memoryview(b"")  # Arrow's is "b"
    valid = array.is_valid().to_numpy(zero_copy_only=False)
    return [view[int(ends[i]) : int(ends[i + 1])] if valid[i] else None for i in range(len(array))]


def _column(table: pa.Table, name: str) -> list:
    return table.column(name).to_pylist() if name in table.column_names else [None] * len(table)


def site_stacks(table: pa.Table, channels: tuple[str, ...] | list[str]) -> np.ndarray:
    """(rows, channels, H, W) from site_images rows holding `<c>_pixels`, `<c>_shape`,
    `<c>_dtype` and, when read, `<c>_codec` (absent or null: told from the bytes, as for rows
    written before codecs). Every cell is decoded straight into its place in the result, so
    every site of the table must have one shape and dtype."""
    jobs = []
    for index, channel in enumerate(channels):
        c = channel_prefix(channel)
        cells = _cells(table.column(f"{c}_pixels"))
        shapes, dtypes = _column(table, f"{c}_shape"), _column(table, f"{c}_dtype")
        codecs = _column(table, f"{c}_codec")
        for row, cell in enumerate(cells):
            if cell is None or shapes[row] is None or dtypes[row] is None:
                raise ValueError(f"site {row} of the read has no {c}_pixels, shape or dtype")
            jobs.append((row, index, cell, tuple(shapes[row]), dtypes[row], codecs[row]))
    if not jobs:
        return np.empty((len(table), len(channels), 0, 0), dtype=np.uint8)
    shape, dtype = jobs[0][3], np.dtype(jobs[0][4])
    for row, index, _, other_shape, other_dtype, _ in jobs:
        if other_shape != shape or np.dtype(other_dtype) != dtype:
            c = channel_prefix(channels[index])
            raise ValueError(
                f"sites of one read differ in shape or dtype: {c} of site {row} is "
                f"{other_shape} {other_dtype}, the first is {shape} {dtype} (read sites of one "
                "shape together)"
            )
    out = np.empty((len(table), len(channels), *shape), dtype=dtype)

    def decode_one(job: tuple) -> None:
        row, index, cell, cell_shape, cell_dtype, codec = job
        decode(cell, cell_shape, cell_dtype, codec, out=out[row, index])

    pool = _decode_pool() if len(jobs) > 1 else None
    if pool is None:
        for job in jobs:
            decode_one(job)
    else:
        list(pool.map(decode_one, jobs))
    return out


__all__ = ["MAX_DECODE_THREADS", "decode_threads", "site_stacks"]
