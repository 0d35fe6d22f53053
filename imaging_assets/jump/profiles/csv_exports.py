"""CellProfiler CSV exports (Image.csv, Cells.csv, ...) as a temporary backend SQLite.

The CSVs are loaded into a SQLite file on disk, one table per file, so they are read, checked,
joined and streamed exactly like a backend, in the same bounded memory.
"""

from __future__ import annotations

import csv
import sqlite3
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from imaging_assets.jump.profiles.backend import COMPARTMENTS

_ID_COLUMNS = ("ImageNumber", "ObjectNumber")


@contextmanager
def csv_backend(folder: str | Path) -> Iterator[Path]:
    """The path of a SQLite holding the folder's Image and compartment CSVs (removed after)."""
    folder = Path(folder)
    with tempfile.TemporaryDirectory(prefix="imaging_assets_csv_") as tmp:
        database = Path(tmp) / "backend.sqlite"
        db = sqlite3.connect(database)
        for name in ("Image", *COMPARTMENTS):
            path = folder / f"{name}.csv"
            if not path.exists():
                continue
            with path.open(newline="") as handle:
                reader = csv.reader(handle)
                header = next(reader)
                # ImageNumber / ObjectNumber with INTEGER affinity: "01" and "1" become 1.
                columns = ", ".join(
                    '"' + c.replace('"', '""') + '"' + (" INTEGER" if c in _ID_COLUMNS else "")
                    for c in header
                )
                db.execute(f'CREATE TABLE "{name}" ({columns})')
                db.executemany(
                    f'INSERT INTO "{name}" VALUES ({", ".join("?" * len(header))})',
                    ([v if v != "" else None for v in row] for row in reader),
                )
        db.commit()
        db.close()
        yield database
