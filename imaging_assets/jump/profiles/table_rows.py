"""One table's rows of a batch of images, as numpy arrays, read without any join in SQLite.

Each table is read on its own (a compartment table has at most SQLite's 2,000 columns; the join
of three did not fit in one result set), by rowid seeks over the runs found in image_runs, in
chunks of rows that become float64 arrays at once, so no more than one chunk of Python objects
lives at a time. CellProfiler's backends hold REAL, INTEGER or their text (the real ones store
TEXT): all become float64, exactly; NULL and '' become NaN (SQLite stores CellProfiler's NaN as
NULL). A value that is not a number is an InputError naming the file, table, column and rowid.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

import numpy as np

from imaging_assets.core.errors import InputError
from imaging_assets.jump.profiles.image_runs import Run
from imaging_assets.jump.profiles.plan import TablePlan

_FETCH_VALUES = 100_000  # values per fetch: ~3 MB of Python floats, whatever the width


@dataclass(frozen=True)
class TableRows:
    """Rows of one compartment table: ids, links (float64, NaN when NULL) and features."""

    table: str
    image: np.ndarray  # int64 image index per row
    rowid: np.ndarray  # int64
    object_number: np.ndarray  # int64
    links: np.ndarray  # (rows, links) float64, in TablePlan.links order
    features: np.ndarray  # (rows, features) float64, in TablePlan.features order

    def __len__(self) -> int:
        return len(self.rowid)


def _chunk_array(rows: list[tuple], table: TablePlan, sources: list[str], file: str) -> np.ndarray:
    try:
        return np.array(rows, dtype=np.float64)
    except (ValueError, TypeError):
        pass
    cleaned = [tuple(None if v == "" else v for v in row) for row in rows]
    try:
        return np.array(cleaned, dtype=np.float64)
    except (ValueError, TypeError):
        pass
    for row in cleaned:
        for source, value in zip(sources, row, strict=True):
            try:
                float(value if value is not None else "nan")
            except (ValueError, TypeError):
                raise InputError(
                    file,
                    f"table {table.table!r}, rowid {row[0]}: a value is not numeric",
                    column=f"{table.table}.{source}",
                    row=row[0],
                    expected="a number (REAL, INTEGER or its text)",
                    got=value,
                ) from None
    raise AssertionError("unreachable: some value failed to convert")


def read_rows(
    db: sqlite3.Connection, table: TablePlan, runs: list[tuple[int, Run]], file: str
) -> TableRows:
    """The rows of these (image index, run) pairs, in that order."""
    links, features = table.links, table.features
    sources = ["rowid", "ObjectNumber", *(o.source for o in links), *(o.source for o in features)]
    select = ", ".join(["rowid", '"ObjectNumber"'] + [f'"{s}"' for s in sources[2:]])
    sql = f'SELECT {select} FROM "{table.table}" WHERE rowid BETWEEN ? AND ?'
    fetch = max(16, _FETCH_VALUES // len(sources))
    total = sum(run.rows for _, run in runs)
    n_ids = 2 + len(links)
    ids = np.empty((total, n_ids), dtype=np.float64)
    values = np.empty((total, len(features)), dtype=np.float64)
    image = np.empty(total, dtype=np.int64)
    filled = 0
    for index, run in runs:
        cursor = db.execute(sql, (run.first, run.last))
        while chunk := cursor.fetchmany(fetch):
            array = _chunk_array(chunk, table, sources, file)
            end = filled + len(array)
            if end > total:
                raise InputError(file, f"table {table.table!r} changed while it was read")
            ids[filled:end] = array[:, :n_ids]
            values[filled:end] = array[:, n_ids:]
            image[filled:end] = index
            filled = end
    if filled != total:
        raise InputError(file, f"table {table.table!r} changed while it was read")
    return TableRows(
        table=table.table,
        image=image,
        rowid=ids[:, 0].astype(np.int64),
        object_number=ids[:, 1].astype(np.int64),
        links=np.ascontiguousarray(ids[:, 2:]),
        features=values,
    )
