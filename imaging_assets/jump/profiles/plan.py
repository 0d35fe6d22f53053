"""What to read from each table of a backend and how it becomes one row per cell (no data read).

The join is the field's (pycytominer's SingleCells merge): within one image, each Cytoplasm object
joins the Cells object named by Cytoplasm_Parent_Cells and the Nuclei object named by
Cytoplasm_Parent_Nuclei. The "cell" row is the Cytoplasm object when that table exists, else
Cells, else Nuclei; a compartment that is absent, or that the cell table names no parent in, is
not joined. Images are keyed by ImageNumber, and by TableNumber too when both tables have one.
Only the Image table's metadata (and its MD5 digests) ride on each cell, as in pycytominer.

Each compartment column is a link (ObjectNumber, *_Parent_*: whole numbers, kept as int64
columns) or a feature (float64, in the feature vector); unprefixed names get the compartment
prefix (ObjectNumber -> Cells_ObjectNumber), so every output name says where it was measured.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from imaging_assets.jump.profiles.backend import COMPARTMENTS, BackendLayout
from imaging_assets.jump.profiles.feature_sets import FeatureSet

SKIPPED = ("ImageNumber", "TableNumber")
_INTEGER_SUFFIXES = ("ObjectNumber", "ImageNumber")


@dataclass(frozen=True)
class Output:
    source: str  # column in the backend table
    name: str  # output name, prefixed with the compartment
    link: bool  # ObjectNumber or a parent: an int64 column; otherwise a float64 feature


@dataclass(frozen=True)
class TablePlan:
    compartment: str
    table: str
    outputs: tuple[Output, ...]  # in the table's column order
    table_number: bool  # matched to the Image table on TableNumber as well

    @property
    def links(self) -> tuple[Output, ...]:
        return tuple(o for o in self.outputs if o.link)

    @property
    def features(self) -> tuple[Output, ...]:
        return tuple(o for o in self.outputs if not o.link)

    def parent(self, compartment: str) -> Output | None:
        name = f"{self.compartment}_Parent_{compartment}"
        return next((o for o in self.outputs if o.name == name), None)


@dataclass(frozen=True)
class CellPlan:
    """The tables a backend's cells are read from, in output order, and the Image metadata."""

    layout: BackendLayout
    base: str  # the compartment whose objects are the cells
    tables: tuple[TablePlan, ...]  # joined compartments, in COMPARTMENTS order
    image_columns: tuple[tuple[str, str], ...]  # (Image table column, output name), as text

    @property
    def base_table(self) -> TablePlan:
        return next(t for t in self.tables if t.compartment == self.base)

    @property
    def image_table_number(self) -> bool:
        return "TableNumber" in self.layout.columns[self.layout.image_table]

    @cached_property
    def feature_set(self) -> FeatureSet:
        names, compartments = [], []
        for table in self.tables:
            for output in table.features:
                names.append(output.name)
                compartments.append(table.compartment)
        return FeatureSet(tuple(names), tuple(compartments))

    @cached_property
    def link_names(self) -> tuple[str, ...]:
        return tuple(o.name for t in self.tables for o in t.links)


def _image_columns(columns: list[str]) -> list[tuple[str, str]]:
    """Image columns every cell row carries: metadata, and the raw files' MD5 digests (the way
    back from a cell to the raw objects it was measured on)."""
    wanted = [
        c for c in columns if c.startswith(("Image_Metadata_", "Metadata_", "Image_MD5Digest_Orig"))
    ]
    # Both Metadata_Well and Image_Metadata_Well would become one output name: keep the latter.
    kept = [c for c in wanted if c.startswith("Image_") or f"Image_{c}" not in wanted]
    return [(c, c if c.startswith("Image_") else f"Image_{c}") for c in kept]


def _outputs(compartment: str, columns: list[str]) -> tuple[Output, ...]:
    out = []
    for column in columns:
        if column in SKIPPED:
            continue
        name = column if column.startswith(f"{compartment}_") else f"{compartment}_{column}"
        link = name.endswith(_INTEGER_SUFFIXES) or "_Parent_" in name
        out.append(Output(column, name, link))
    return tuple(out)


def plan_cells(layout: BackendLayout) -> CellPlan:
    """The join plan of a backend (see the module docstring)."""
    base = layout.base
    base_columns = layout.columns[layout.compartments[base]]
    image_has_number = "TableNumber" in layout.columns[layout.image_table]
    tables = []
    for compartment in COMPARTMENTS:
        table = layout.compartments.get(compartment)
        if table is None:
            continue
        linked = compartment == base or f"{base}_Parent_{compartment}" in base_columns
        if not linked:
            continue
        columns = layout.columns[table]
        tables.append(
            TablePlan(
                compartment,
                table,
                _outputs(compartment, columns),
                image_has_number and "TableNumber" in columns,
            )
        )
    image_columns = _image_columns(layout.columns[layout.image_table])
    return CellPlan(layout, base, tuple(tables), tuple(image_columns))
