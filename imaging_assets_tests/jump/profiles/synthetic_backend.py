"""Synthetic CellProfiler backends with the real JUMP schema, for tests and benchmarks.

The column names, their order and the kind of values each holds (whole numbers, zeros, constants,
full-precision floats, with the real magnitude) come from the real CytoTable output of a JUMP
pilot plate (../shared/fixtures/real/cpg0000_BR00117006, 5,795 object columns); the tables are
laid out as CellProfiler's backend (Per_Image, Per_Cells, Per_Cytoplasm, Per_Nuclei with
TableNumber, ImageNumber, ObjectNumber). Real magnitudes matter for byte-size comparisons: 96%
of the real features are full-precision floats, which no codec shrinks much.
"""

from __future__ import annotations

import hashlib
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

COMPARTMENTS = ("Cells", "Cytoplasm", "Nuclei")
REAL_PROFILES = Path("cpg0000_BR00117006") / "BR00117006_shrunken.parquet"
# Columns of the merged file that are not measurements of the compartment tables.
_NOT_MEASURED = ("_TableNumber",)
_LINKS = ("Cytoplasm_Parent_Cells", "Cytoplasm_Parent_Nuclei", "Cells_Parent_Nuclei")


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # "int", "float", "zero", "const" or "text"
    scale: float


@dataclass(frozen=True)
class RealSchema:
    image: list[Column]
    objects: dict[str, list[Column]]  # compartment -> measurement columns, in the real order

    @property
    def object_columns(self) -> int:
        return sum(len(columns) for columns in self.objects.values())

    def narrowed(self, per_compartment: int) -> RealSchema:
        """The first `per_compartment` measurements of each compartment (links always kept)."""
        objects = {
            c: [col for col in cols if col.name in _LINKS]
            + [col for col in cols if col.name not in _LINKS][:per_compartment]
            for c, cols in self.objects.items()
        }
        return RealSchema(self.image, objects)


def _kind(values: np.ndarray) -> tuple[str, float]:
    if (values == 0).all():
        return "zero", 0.0
    if (values == values[0]).all():
        return "const", float(values[0])
    if (values == np.round(values)).all():
        return "int", float(np.abs(values).mean())
    return "float", float(np.abs(values).mean())


def real_schema(real_fixtures: Path) -> RealSchema:
    """Names, order and value kinds of the real profiles' Image and compartment columns."""
    table = pq.read_table(Path(real_fixtures) / REAL_PROFILES)
    image: list[Column] = []
    objects: dict[str, list[Column]] = {c: [] for c in COMPARTMENTS}
    for field in table.schema:
        name = field.name
        compartment = name.split("_", 1)[0]
        if name.endswith(_NOT_MEASURED) or compartment not in (*COMPARTMENTS, "Image"):
            continue
        if field.type in ("string", "large_string") or str(field.type).startswith("timestamp"):
            column = Column(name, "text", 0.0)
        else:
            column = Column(name, *_kind(table[name].to_numpy(zero_copy_only=False).astype(float)))
        (image if compartment == "Image" else objects[compartment]).append(column)
    return RealSchema(image, objects)


def _sql_type(column: Column) -> str:
    return "TEXT" if column.kind == "text" else ("INTEGER" if column.kind == "int" else "REAL")


def _values(column: Column, n: int, rng: np.random.Generator) -> np.ndarray:
    if column.kind == "zero":
        return np.zeros(n)
    if column.kind == "const":
        return np.full(n, column.scale)
    noise = 1 + 0.3 * rng.standard_normal(n)
    if column.kind == "int":
        return np.round(column.scale * np.abs(noise))
    return column.scale * noise


def _image_row(schema: RealSchema, image: int, plate: str, well: str, site: int) -> list:
    fixed = {
        "Image_Metadata_Plate": plate,
        "Image_Metadata_Well": well,
        "Image_Metadata_Site": site,
    }
    row: list = [1, image, plate, well, site]
    for column in schema.image:
        if column.name in fixed:
            continue
        if column.name.startswith("Image_MD5Digest_"):
            row.append(hashlib.md5(f"{column.name}{image}".encode()).hexdigest())
        elif column.kind == "text":
            row.append(f"{column.name}-{image}")
        else:
            row.append(float(column.scale))
    return row


def write_backend(
    path: Path,
    schema: RealSchema,
    *,
    images: int,
    cells_per_image: int,
    plate: str = "P1",
    sites_per_well: int = 9,
    distinct_images: int | None = None,
    seed: int = 0,
) -> Path:
    """A backend of `images` x `cells_per_image` cells in the real schema (Per_ tables).

    Within an image, Cytoplasm object k's parents are Cells and Nuclei object n + 1 - k (a
    reversed order, so a join by row position instead of by parent would be caught). Only
    `distinct_images` images are drawn in Python; the rest are copied inside SQLite with every
    float scaled by a per-image factor, so values stay distinct and large backends build fast.
    """
    path = Path(path)
    distinct = min(images, distinct_images or images)
    rng = np.random.default_rng(seed)
    db = sqlite3.connect(path)
    image_fixed = ("Image_Metadata_Plate", "Image_Metadata_Well", "Image_Metadata_Site")
    image_columns = [c for c in schema.image if c.name not in image_fixed]
    db.execute(
        'CREATE TABLE Per_Image (TableNumber INTEGER, ImageNumber INTEGER, "Image_Metadata_Plate" '
        'TEXT, "Image_Metadata_Well" TEXT, "Image_Metadata_Site" INTEGER, '
        + ", ".join(f'"{c.name}" {_sql_type(c)}' for c in image_columns)
        + ")"
    )
    rows = []
    for image in range(1, images + 1):
        well_index, site = divmod(image - 1, sites_per_well)
        well = f"{'ABCDEFGHIJKLMNOP'[well_index // 24 % 16]}{well_index % 24 + 1:02d}"
        rows.append(_image_row(schema, image, plate, well, site + 1))
    db.executemany(f"INSERT INTO Per_Image VALUES ({', '.join('?' * len(rows[0]))})", rows)
    n = cells_per_image
    objects = np.arange(1, n + 1)
    for compartment, columns in schema.objects.items():
        table = f"Per_{compartment}"
        names = ["TableNumber", "ImageNumber", "ObjectNumber", *(c.name for c in columns)]
        db.execute(
            f"CREATE TABLE {table} (TableNumber INTEGER, ImageNumber INTEGER, ObjectNumber INTEGER, "
            + ", ".join(f'"{c.name}" {_sql_type(c)}' for c in columns)
            + ")"
        )
        insert = f"INSERT INTO {table} VALUES ({', '.join('?' * len(names))})"
        for image in range(1, distinct + 1):
            data = np.empty((n, len(names)), dtype=object)
            data[:, 0], data[:, 1], data[:, 2] = 1, image, objects
            for j, column in enumerate(columns, start=3):
                if column.name in _LINKS:
                    data[:, j] = (n + 1 - objects) if compartment == "Cytoplasm" else objects
                elif column.name.endswith("_Number_Object_Number"):
                    data[:, j] = objects
                else:
                    values = _values(column, n, rng)
                    data[:, j] = values.astype(np.int64) if column.kind == "int" else values
            db.executemany(insert, data.tolist())
        for start in range(distinct + 1, images + 1, distinct):
            stop = min(start + distinct, images + 1)
            scaled = [
                f'"{c.name}" * (1 + 1e-3 * ((ImageNumber + {start}) % 97))'
                if c.kind == "float" and c.name not in _LINKS
                else f'"{c.name}"'
                for c in columns
            ]
            db.execute(
                f"INSERT INTO {table} SELECT TableNumber, ImageNumber + {start - 1}, ObjectNumber, "
                + ", ".join(scaled)
                + f" FROM {table} WHERE ImageNumber <= {stop - start}"
            )
        db.commit()
    db.close()
    return path
