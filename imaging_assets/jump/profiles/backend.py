"""A CellProfiler backend SQLite: opened read-only, its tables found, its object ids checked.

Before anything is read, every table is checked once (check_object_ids): ImageNumber (and
ObjectNumber in the object tables) must be a whole number in every row, stored as an integer or
as its plain text (the real backends store TEXT), and every object's ImageNumber must match a row
of the Image table under SQLite's own comparison. A NULL, "two", or a '1' stored as text beside
an integer 1 would otherwise drop cells (or their compartments' features) without a word. The
check reads only the id columns (the start of each record, never its overflow pages), stopped
at the first bad row; the error names the file, the table and column, and the row (SQLite rowid).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from imaging_assets.core.errors import InputError

COMPARTMENTS = ("Cytoplasm", "Cells", "Nuclei")


@dataclass(frozen=True)
class BackendLayout:
    """Which tables a backend has and the columns of each."""

    image_table: str
    compartments: dict[str, str]  # compartment -> table name
    columns: dict[str, list[str]]  # table name -> columns

    @property
    def base(self) -> str:
        for compartment in COMPARTMENTS:
            if compartment in self.compartments:
                return compartment
        raise ValueError("no object table")


def _connect(path: Path) -> sqlite3.Connection:
    # immutable=1: read-only files (fixtures, mounted buckets) and no locking on network disks.
    return sqlite3.connect(
        f"file:{Path(path).resolve()}?mode=ro&immutable=1", uri=True, check_same_thread=False
    )


@contextmanager
def open_backend(
    source: str | Path | sqlite3.Connection, file: str
) -> Iterator[sqlite3.Connection]:
    """A read-only connection to a backend (closed after), or the caller's own (left open)."""
    if isinstance(source, sqlite3.Connection):
        yield source
        return
    try:
        db = _connect(Path(source))
        db.execute("SELECT 1 FROM sqlite_master").fetchall()
    except sqlite3.DatabaseError as error:
        raise InputError(file, f"not a readable SQLite file ({error})") from error
    try:
        yield db
    finally:
        db.close()


def inspect_backend(db: sqlite3.Connection, file: str) -> BackendLayout:
    tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}

    def find(name: str) -> str | None:
        for candidate in (f"Per_{name}", name):
            if candidate in tables:
                return candidate
        return None

    image = find("Image")
    if image is None:
        raise InputError(file, "no Image table", expected="Per_Image or Image", got=sorted(tables))
    compartments = {c: t for c in COMPARTMENTS if (t := find(c))}
    if not compartments:
        raise InputError(
            file,
            "no object table",
            expected="Per_Cytoplasm, Per_Cells or Per_Nuclei",
            got=sorted(tables),
        )
    columns = {
        table: [row[1] for row in db.execute(f'PRAGMA table_info("{table}")')]
        for table in [image, *compartments.values()]
    }
    return BackendLayout(image, compartments, columns)


def _whole_number(column: str) -> str:
    """SQL: the column holds a whole number, as an integer, an integral real or its plain text."""
    return (
        f"(typeof({column}) = 'integer'"
        f" OR (typeof({column}) = 'real' AND {column} = CAST({column} AS INTEGER))"
        f" OR (typeof({column}) = 'text' AND CAST(CAST({column} AS INTEGER) AS TEXT) = {column}))"
    )


def _first_bad_row(db: sqlite3.Connection, sql: str) -> tuple | None:
    """The first row a check query returns; without a rowid (WITHOUT ROWID tables) it is null."""
    try:
        return db.execute(sql).fetchone()
    except sqlite3.OperationalError as error:
        if "rowid" not in str(error):
            raise
        return db.execute(sql.replace("t.rowid", "NULL", 1)).fetchone()


def check_object_ids(db: sqlite3.Connection, layout: BackendLayout, file: str) -> None:
    """Every ImageNumber / ObjectNumber can join: an InputError naming table, column and row if not.

    See the module docstring. ObjectNumber is checked in the object tables (Cytoplasm, Cells,
    Nuclei), ImageNumber everywhere, and an object's image must be a row of the Image table.
    """
    image = layout.image_table
    tables = [(image, False), *((t, True) for t in layout.compartments.values())]
    for table, is_object_table in tables:
        needed = ["ImageNumber", "ObjectNumber"] if is_object_table else ["ImageNumber"]
        for column in needed:
            if column not in layout.columns[table]:
                raise InputError(
                    file,
                    f"table {table!r} has no {column} column",
                    column=f"{table}.{column}",
                    expected="CellProfiler's ImageNumber (and ObjectNumber) columns",
                )
        object_number = "t.ObjectNumber" if is_object_table else "NULL"
        object_ok = _whole_number("t.ObjectNumber") if is_object_table else "1"
        has_image = "1"
        if is_object_table:
            same_table = (
                " AND i.TableNumber = t.TableNumber"
                if "TableNumber" in layout.columns[image] and "TableNumber" in layout.columns[table]
                else ""
            )
            has_image = (
                f'EXISTS (SELECT 1 FROM "{image}" i '
                f"WHERE i.ImageNumber = t.ImageNumber{same_table})"
            )
        image_ok = _whole_number("t.ImageNumber")
        found = _first_bad_row(
            db,
            f"SELECT t.rowid, t.ImageNumber, {object_number}, {image_ok}, {object_ok} "
            f'FROM "{table}" t WHERE NOT ({image_ok}) OR NOT ({object_ok}) OR NOT ({has_image}) '
            "LIMIT 1",
        )
        if found is None:
            continue
        rowid, image_number, obj, image_is_whole, object_is_whole = found
        where = f"table {table!r}, rowid {rowid}" + (
            f" (ObjectNumber {obj!r})" if is_object_table else ""
        )
        if not image_is_whole:
            raise InputError(
                file,
                f"{where}: ImageNumber is {'NULL' if image_number is None else 'not a whole number'}",
                column=f"{table}.ImageNumber",
                row=rowid,
                expected="a whole number (integer, or its plain text)",
                got=image_number,
            )
        if not object_is_whole:
            raise InputError(
                file,
                f"{where}: ObjectNumber is {'NULL' if obj is None else 'not a whole number'}",
                column=f"{table}.ObjectNumber",
                row=rowid,
                expected="a whole number (integer, or its plain text)",
                got=obj,
            )
        raise InputError(
            file,
            f"{where}: ImageNumber {image_number!r} ({type(image_number).__name__}) matches no "
            f"row of {image!r}, so SQLite would drop the object",
            column=f"{table}.ImageNumber",
            row=rowid,
            expected=f"the ImageNumber of a row of {image!r}, stored as that table stores it",
            got=image_number,
        )
