"""The former single-cell API: one float64 column per feature (the wide layout).

Kept, with the same names, schema and rows, for callers not yet on the vector layout
(cells.py); it runs on the same per-table reads and join, so it too loads backends of any
width. At JUMP's width prefer the vector layout: one Lance column per feature makes every read
of a row pay per column.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from imaging_assets.jump.profiles.backend import (
    COMPARTMENTS,
    BackendLayout,
    check_object_ids,
    inspect_backend,
    open_backend,
)
from imaging_assets.jump.profiles.cells import (
    DEFAULT_IMAGES_PER_BATCH,
    Backend,
    iter_wide_cell_batches,
    plan_cell_profiles,
)
from imaging_assets.jump.profiles.csv_exports import csv_backend
from imaging_assets.jump.profiles.layout import KEY_FIELDS

__all__ = [
    "COMPARTMENTS",
    "KEY_FIELDS",
    "BackendLayout",
    "cell_profiles_schema_from_sqlite",
    "check_object_ids",
    "inspect_backend",
    "iter_cell_profiles",
    "iter_cell_profiles_from_csv",
    "open_backend",
]


def cell_profiles_schema_from_sqlite(path_or_sqlite: Backend, file: str | None = None) -> pa.Schema:
    """The stable wide schema of a backend's cell rows, from its table definitions (not its data)."""
    return plan_cell_profiles(path_or_sqlite, file).wide_schema


def iter_cell_profiles(
    path_or_sqlite: Backend,
    file: str,
    *,
    source: str,
    batch: str,
    plate: str,
    images_per_batch: int = DEFAULT_IMAGES_PER_BATCH,
) -> Iterator[pa.RecordBatch]:
    """Record batches of joined cells, one column per feature, `images_per_batch` images at a time.

    Takes a path (opened read-only and immutable) or an open sqlite3 connection (left open).
    """
    keys = {"source": source, "batch": batch, "plate": plate}
    yield from iter_wide_cell_batches(path_or_sqlite, file, keys, images_per_batch)


def iter_cell_profiles_from_csv(
    folder: str | Path,
    file: str,
    *,
    source: str,
    batch: str,
    plate: str,
    images_per_batch: int = DEFAULT_IMAGES_PER_BATCH,
) -> Iterator[pa.RecordBatch]:
    """The same from a folder of CellProfiler CSV exports (Image.csv, Cells.csv, ...)."""
    with csv_backend(folder) as database:
        yield from iter_cell_profiles(
            database,
            file,
            source=source,
            batch=batch,
            plate=plate,
            images_per_batch=images_per_batch,
        )
