"""Where each image's rows are in a backend: one pass over the id columns, then reads by rowid.

Why rowid runs rather than `WHERE ImageNumber IN (...)` per batch or one ordered query: backends
carry no indexes and are opened read-only, so a filter on ImageNumber rescans the table for every
batch, and an ORDER BY sorts the whole table (wide rows: gigabytes of temp files). The rowid is
always indexed. One pass over (rowid, ImageNumber[, TableNumber]) of each table, which reads the
start of each record only, never the overflow pages that hold a wide row's features, finds each
image's runs of consecutive rows; a batch then reads exactly its images' rows with `rowid BETWEEN`
seeks, each table on its own. Tables written image by image (as CellProfiler and
cytominer-database write them) have one run per image, so this index is O(images) in memory,
whatever the number of cells or columns; a shuffled table still reads correctly, in more seeks.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

from imaging_assets.core.errors import InputError
from imaging_assets.jump.profiles.plan import CellPlan, TablePlan

_FETCH = 65536


@dataclass(frozen=True)
class Run:
    """Consecutive rows (in rowid order) of one image in one table."""

    first: int
    last: int
    rows: int


@dataclass(frozen=True)
class Images:
    """The Image table's rows in output order (ImageNumber, then TableNumber)."""

    numbers: list[int]  # ImageNumber per image index
    table_numbers: list[str | None]  # TableNumber (as text) per image index, None without one
    metadata: dict[str, list]  # output name -> the Image table's value per image index

    def lookup(self, with_table_number: bool) -> dict:
        """(ImageNumber, TableNumber) -> index, or ImageNumber -> index (-1: ambiguous)."""
        if with_table_number:
            return {
                (n, t): i
                for i, (n, t) in enumerate(zip(self.numbers, self.table_numbers, strict=True))
            }
        out: dict = {}
        for i, number in enumerate(self.numbers):
            out[number] = -1 if number in out else i
        return out


def _number(value) -> int:
    """A whole number as check_object_ids admits it: integer, integral real or integer text."""
    return value if type(value) is int else int(float(value))


def _text(value) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def read_images(db: sqlite3.Connection, plan: CellPlan, file: str) -> Images:
    """Every image's key and metadata, sorted; an image listed twice is an InputError."""
    table = plan.layout.image_table
    with_number = plan.image_table_number
    columns = ["rowid", "ImageNumber", *(["TableNumber"] if with_number else [])]
    columns += [f'"{source}"' for source, _ in plan.image_columns]
    rows = db.execute(f'SELECT {", ".join(columns)} FROM "{table}"').fetchall()
    keyed = sorted(
        ((_number(r[1]), _text(r[2]) if with_number else None, r) for r in rows),
        key=lambda k: (k[0], k[1] or ""),
    )
    for previous, current in zip(keyed, keyed[1:], strict=False):
        if previous[:2] == current[:2]:
            raise InputError(
                file,
                f"table {table!r}, rowid {current[2][0]}: image {current[0]} is listed twice "
                f"(also rowid {previous[2][0]}), so its cells would be duplicated",
                column=f"{table}.ImageNumber",
                row=current[2][0],
            )
    offset = 3 if with_number else 2
    metadata = {
        name: [k[2][offset + j] for k in keyed] for j, (_, name) in enumerate(plan.image_columns)
    }
    return Images([k[0] for k in keyed], [k[1] for k in keyed], metadata)


def scan_runs(
    db: sqlite3.Connection, table: TablePlan, images: Images, file: str
) -> dict[int, list[Run]]:
    """image index -> the runs of `table` that hold its rows, in rowid order."""
    id_columns = "ImageNumber, TableNumber" if table.table_number else "ImageNumber"
    try:
        cursor = db.execute(f'SELECT rowid, {id_columns} FROM "{table.table}" ORDER BY rowid')
    except sqlite3.OperationalError as error:
        raise InputError(
            file,
            f"table {table.table!r} cannot be read by rowid ({error})",
            expected="an ordinary (rowid) table, as CellProfiler and cytominer-database write",
        ) from error
    lookup = images.lookup(table.table_number)
    runs: dict[int, list[Run]] = {}
    raw_key: tuple | None = None
    image = first = last = count = 0
    while chunk := cursor.fetchmany(_FETCH):
        for row in chunk:
            key = row[1:]
            if key != raw_key:
                if raw_key is not None:
                    runs.setdefault(image, []).append(Run(first, last, count))
                image = _image_index(lookup, key, table, row[0], file)
                raw_key, first, count = key, row[0], 0
            last = row[0]
            count += 1
    if raw_key is not None:
        runs.setdefault(image, []).append(Run(first, last, count))
    return runs


def _image_index(lookup: dict, key: tuple, table: TablePlan, rowid: int, file: str) -> int:
    number = _number(key[0])
    index = lookup.get((number, _text(key[1])) if table.table_number else number)
    if index is None or index < 0:
        problem = (
            "matches no image"
            if index is None
            else "matches several images (they differ by TableNumber, which this table lacks)"
        )
        raise InputError(
            file,
            f"table {table.table!r}, rowid {rowid}: ImageNumber {key[0]!r} {problem}",
            column=f"{table.table}.ImageNumber",
            row=rowid,
        )
    return index


def image_batches(
    cells: dict[int, int],
    *,
    images_per_batch: int,
    cells_per_batch: int | None,
    bytes_per_cell: int,
    max_batch_bytes: int | None,
) -> Iterator[list[int]]:
    """Image indexes in order, cut into batches of whole images within every limit given.

    `cells` maps each image with cells to its number of cells. A batch always holds at least one
    image, so an image larger than a limit is a batch of its own.
    """
    limit = cells_per_batch or 0
    if max_batch_bytes:
        by_bytes = max(1, max_batch_bytes // max(bytes_per_cell, 1))
        limit = min(limit, by_bytes) if limit else by_bytes
    batch: list[int] = []
    in_batch = 0
    for image in sorted(cells):
        n = cells[image]
        if batch and (len(batch) >= images_per_batch or (limit and in_batch + n > limit)):
            yield batch
            batch, in_batch = [], 0
        batch.append(image)
        in_batch += n
    if batch:
        yield batch
