"""Single-cell profiles from a CellProfiler backend, streamed in bounded memory at any width.

Each table (Image, then Cytoplasm / Cells / Nuclei, or their Per_ names) is read on its own in
batches of whole images (image_runs, table_rows) and joined outside SQLite (join.py, pycytominer's
SingleCells merge), so a backend with any number of feature columns loads: the former single SQL
join stopped at SQLite's 2,000 columns per result set ("too many columns in result set") with
~1,400 features per compartment, while JUMP's backends have ~1,900. Memory is one batch: at most
`images_per_batch` images, `cells_per_batch` cells and `max_batch_bytes` of features (whole
images; a batch holds at least one), so it stays flat in the number of cells and in the number
of columns (wider rows make batches of fewer cells). Every input check runs before the first
batch: object ids (backend.check_object_ids), images listed twice, every image's well, site and
plate; objects listed twice and non-numeric values fail in the batch that reads them. Errors name
the file, table, column and row.

Rows come out in the vector layout (layout.py): keys, the Image metadata and MD5 digests, links and
centres as columns, the features as one float64 vector with its feature set's id. Store the plan's
feature set (feature_sets.ensure_feature_set) before committing rows that name it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa

from imaging_assets.jump.profiles.backend import check_object_ids, inspect_backend, open_backend
from imaging_assets.jump.profiles.cell_rows import vector_batch, wide_batch
from imaging_assets.jump.profiles.csv_exports import csv_backend
from imaging_assets.jump.profiles.feature_sets import FeatureSet
from imaging_assets.jump.profiles.image_runs import image_batches, read_images, scan_runs
from imaging_assets.jump.profiles.join import JoinedCells, join_cells
from imaging_assets.jump.profiles.layout import CELL_COMPARTMENT_KEY, KEY_FIELDS, vector_schema
from imaging_assets.jump.profiles.plan import CellPlan, plan_cells
from imaging_assets.jump.profiles.sites import Sites, image_sites
from imaging_assets.jump.profiles.table_rows import read_rows

DEFAULT_IMAGES_PER_BATCH = 16
DEFAULT_MAX_BATCH_BYTES = 128 * 2**20
Backend = str | Path | sqlite3.Connection


@dataclass(frozen=True)
class CellProfilesPlan:
    """What a backend's cell rows will be, from its table definitions (no data read)."""

    plan: CellPlan
    schema: pa.Schema  # the vector layout
    wide_schema: pa.Schema  # one float64 column per feature (the former layout)

    @property
    def feature_set(self) -> FeatureSet:
        return self.plan.feature_set


def _plan(plan: CellPlan) -> CellProfilesPlan:
    metadata = {CELL_COMPARTMENT_KEY: plan.base.encode()}
    image_names = [name for _, name in plan.image_columns]
    schema = vector_schema(
        KEY_FIELDS, image_names, list(plan.link_names), plan.feature_set, metadata
    )
    wide = list(KEY_FIELDS) + [pa.field(n, pa.string()) for n in image_names]
    for table in plan.tables:
        wide += [pa.field(o.name, pa.int64() if o.link else pa.float64()) for o in table.outputs]
    return CellProfilesPlan(plan, schema, pa.schema(wide, metadata=metadata))


def plan_cell_profiles(path_or_sqlite: Backend, file: str | None = None) -> CellProfilesPlan:
    """The schema and feature set of a backend's cell rows (open, or read-only from a path)."""
    file = file or str(path_or_sqlite)
    with open_backend(path_or_sqlite, file) as db:
        return _plan(plan_cells(inspect_backend(db, file)))


def _joined_batches(
    db: sqlite3.Connection, file: str, keys: dict, limits: dict
) -> Iterator[tuple[CellPlan, Sites, JoinedCells]]:
    layout = inspect_backend(db, file)
    check_object_ids(db, layout, file)
    plan = plan_cells(layout)
    images = read_images(db, plan, file)
    runs = {t.compartment: scan_runs(db, t, images, file) for t in plan.tables}
    cells = {i: sum(r.rows for r in rs) for i, rs in runs[plan.base].items()}
    sites = image_sites(plan, images, sorted(cells), keys, file)
    bytes_per_cell = 8 * (len(plan.feature_set) + len(plan.link_names) + 4)
    for batch in image_batches(cells, bytes_per_cell=bytes_per_cell, **limits):
        rows = {
            t.compartment: read_rows(
                db, t, [(i, r) for i in batch for r in runs[t.compartment].get(i, [])], file
            )
            for t in plan.tables
        }
        joined = join_cells(plan, rows, images.numbers, file)
        del rows  # one batch alive at a time: free this one's tables before reading the next
        yield plan, sites, joined
        del joined


def _limits(images_per_batch: int, cells_per_batch: int | None, max_batch_bytes: int | None):
    if images_per_batch < 1:
        raise ValueError(f"images_per_batch must be at least 1, got {images_per_batch}")
    if cells_per_batch is not None and cells_per_batch < 1:
        raise ValueError(f"cells_per_batch must be at least 1, got {cells_per_batch}")
    return {
        "images_per_batch": images_per_batch,
        "cells_per_batch": cells_per_batch,
        "max_batch_bytes": max_batch_bytes,
    }


def _batches(
    path_or_sqlite: Backend, file: str, keys: dict, limits: dict, wide: bool
) -> Iterator[pa.RecordBatch]:
    with open_backend(path_or_sqlite, file) as db:
        profiles: CellProfilesPlan | None = None
        for plan, sites, joined in _joined_batches(db, file, keys, limits):
            profiles = profiles or _plan(plan)
            if wide:
                batch = wide_batch(
                    profiles.wide_schema, profiles.feature_set, sites, joined, keys, file
                )
            else:
                batch = vector_batch(
                    profiles.schema, profiles.feature_set, sites, joined, keys, file
                )
            del joined  # the batch shares the feature matrix; keep no other reference
            yield batch
            del batch


def iter_cell_profile_batches(
    path_or_sqlite: Backend,
    file: str,
    *,
    source: str,
    batch: str,
    plate: str,
    images_per_batch: int = DEFAULT_IMAGES_PER_BATCH,
    cells_per_batch: int | None = None,
    max_batch_bytes: int | None = DEFAULT_MAX_BATCH_BYTES,
) -> Iterator[pa.RecordBatch]:
    """Record batches of joined cells in the vector layout (plan_cell_profiles(...).schema).

    Takes a path (opened read-only and immutable) or an open sqlite3 connection (left open).
    """
    limits = _limits(images_per_batch, cells_per_batch, max_batch_bytes)
    keys = {"source": source, "batch": batch, "plate": plate}
    yield from _batches(path_or_sqlite, file, keys, limits, wide=False)


def iter_cell_profile_batches_from_csv(
    folder: str | Path,
    file: str,
    *,
    source: str,
    batch: str,
    plate: str,
    images_per_batch: int = DEFAULT_IMAGES_PER_BATCH,
    cells_per_batch: int | None = None,
    max_batch_bytes: int | None = DEFAULT_MAX_BATCH_BYTES,
) -> Iterator[pa.RecordBatch]:
    """The same from a folder of CellProfiler CSV exports (Image.csv, Cells.csv, ...)."""
    with csv_backend(folder) as database:
        yield from iter_cell_profile_batches(
            database,
            file,
            source=source,
            batch=batch,
            plate=plate,
            images_per_batch=images_per_batch,
            cells_per_batch=cells_per_batch,
            max_batch_bytes=max_batch_bytes,
        )


def plan_cell_profiles_from_csv(folder: str | Path, file: str | None = None) -> CellProfilesPlan:
    with csv_backend(folder) as database:
        return plan_cell_profiles(database, file or str(folder))


def iter_wide_cell_batches(
    path_or_sqlite: Backend,
    file: str,
    keys: dict,
    images_per_batch: int = DEFAULT_IMAGES_PER_BATCH,
    cells_per_batch: int | None = None,
    max_batch_bytes: int | None = DEFAULT_MAX_BATCH_BYTES,
) -> Iterator[pa.RecordBatch]:
    """Batches in the former wide layout (plan_cell_profiles(...).wide_schema)."""
    limits = _limits(images_per_batch, cells_per_batch, max_batch_bytes)
    yield from _batches(path_or_sqlite, file, keys, limits, wide=True)
