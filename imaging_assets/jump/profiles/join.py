"""pycytominer's SingleCells merge of one batch of images, in numpy (see plan.py for the rule).

The cell rows are the base compartment's objects, sorted by image then ObjectNumber. Every other
joined compartment is looked up by (image, the base row's parent number) with a sorted search,
a left join: a parent that is NULL, 0 or absent leaves that compartment's features NaN and its
links null, as SQL's LEFT JOIN did. An object listed twice in one image would duplicate cells (or
pick one of two rows at random), so it is an InputError naming the table, column and rowid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imaging_assets.core.errors import InputError
from imaging_assets.jump.profiles.plan import CellPlan
from imaging_assets.jump.profiles.table_rows import TableRows


@dataclass(frozen=True)
class JoinedCells:
    """One row per cell of a batch: its image, object, links and feature vector."""

    image: np.ndarray  # int64 image index
    object_number: np.ndarray  # int64, of the base object
    links: dict[str, np.ndarray]  # link name -> float64 per cell (NaN: null)
    features: np.ndarray  # (cells, features) float64, in the plan's feature-set order

    def __len__(self) -> int:
        return len(self.object_number)


def _sorted_checked(rows: TableRows, image_numbers: list[int], file: str) -> np.ndarray:
    """Row order by (image, ObjectNumber); an object twice in one image is an InputError."""
    order = np.lexsort((rows.object_number, rows.image))
    image, number = rows.image[order], rows.object_number[order]
    twice = np.flatnonzero((image[1:] == image[:-1]) & (number[1:] == number[:-1]))
    if len(twice):
        first, second = order[twice[0]], order[twice[0] + 1]
        rowid = int(rows.rowid[second])
        raise InputError(
            file,
            f"table {rows.table!r}, rowid {rowid}: object {int(rows.object_number[second])} of "
            f"image {image_numbers[int(rows.image[second])]} is listed twice (also rowid "
            f"{int(rows.rowid[first])})",
            column=f"{rows.table}.ObjectNumber",
            row=rowid,
        )
    return order


def _lookup(
    rows: TableRows, order: np.ndarray, image: np.ndarray, parent: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Row of `rows` holding object `parent` of `image` per cell, and whether there is one."""
    valid = np.isfinite(parent) & (parent > 0) & (parent == np.floor(parent))
    wanted_object = np.where(valid, parent, 0).astype(np.int64)
    if len(rows) == 0:
        return np.zeros(len(image), dtype=np.int64), np.zeros(len(image), dtype=bool)
    span = int(max(rows.object_number.max(initial=0), wanted_object.max(initial=0))) + 1
    keys = rows.image[order] * span + rows.object_number[order]
    wanted = image * span + wanted_object
    position = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
    found = valid & (keys[position] == wanted)
    return order[position], found


def join_cells(
    plan: CellPlan, rows: dict[str, TableRows], image_numbers: list[int], file: str
) -> JoinedCells:
    """The batch's cells: base objects with their linked compartments (left joins)."""
    base_plan = plan.base_table
    base = rows[plan.base]
    order = _sorted_checked(base, image_numbers, file)
    image, object_number = base.image[order], base.object_number[order]
    features = np.empty((len(order), len(plan.feature_set)), dtype=np.float64)
    links: dict[str, np.ndarray] = {}
    offset = 0
    for table in plan.tables:
        table_rows = rows[table.compartment]
        if table.compartment == plan.base:
            index, found = order, None
        else:
            parent_output = base_plan.parent(table.compartment)
            if parent_output is None:
                raise AssertionError(f"{table.compartment} is joined without a parent column")
            parent = base.links[order, base_plan.links.index(parent_output)]
            index, found = _lookup(
                table_rows, _sorted_checked(table_rows, image_numbers, file), image, parent
            )
        width = len(table.features)
        block = features[:, offset : offset + width]
        if len(table_rows):
            np.take(table_rows.features, index, axis=0, out=block, mode="clip")
        if found is not None:
            block[~found] = np.nan
        for j, link in enumerate(table.links):
            values = table_rows.links[index, j] if len(table_rows) else np.full(len(index), np.nan)
            if found is not None:
                values = np.where(found, values, np.nan)
            links[link.name] = values
        offset += width
    return JoinedCells(image, object_number, links, features)
