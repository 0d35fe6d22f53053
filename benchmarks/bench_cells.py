"""Benchmark: single-cell profiles from a CellProfiler backend, streamed vs loaded whole.

Builds a synthetic backend SQLite (Per_Image, Per_Cells, Per_Cytoplasm, Per_Nuclei; default 200
images x 300 cells x 40 features per compartment), then measures in fresh processes:
  (a) this project: iter_cell_profiles, 16 images per record batch;
  (b) the reference: pandas.read_sql of each table, then the same merges in memory (how notebooks
      and pycytominer-style scripts usually do it).
Prints cells per second and peak RSS growth of each. Usage: python benchmarks/bench_cells.py
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FEATURES = [f"Feature_{i}" for i in range(40)]


def build(path: Path, images: int, cells: int) -> None:
    db = sqlite3.connect(path)
    db.execute(
        "CREATE TABLE Per_Image (ImageNumber INTEGER, Image_Metadata_Well TEXT, Image_Metadata_Site INTEGER)"
    )
    for comp in ("Cells", "Nuclei", "Cytoplasm"):
        parents = (
            ", Cytoplasm_Parent_Cells INTEGER, Cytoplasm_Parent_Nuclei INTEGER"
            if comp == "Cytoplasm"
            else ""
        )
        features = ", ".join(f"{comp}_{f} REAL" for f in FEATURES)
        db.execute(
            f"CREATE TABLE Per_{comp} (ImageNumber INTEGER, ObjectNumber INTEGER{parents}, {features})"
        )
    rng = random.Random(0)
    for image in range(1, images + 1):
        db.execute(
            "INSERT INTO Per_Image VALUES (?, ?, ?)", (image, f"A{image % 24 + 1:02d}", image)
        )
        for comp in ("Cells", "Nuclei", "Cytoplasm"):
            rows = [
                [
                    image,
                    obj,
                    *([obj, obj] if comp == "Cytoplasm" else []),
                    *(rng.random() for _ in FEATURES),
                ]
                for obj in range(1, cells + 1)
            ]
            db.executemany(f"INSERT INTO Per_{comp} VALUES ({','.join('?' * len(rows[0]))})", rows)
    db.commit()
    db.close()


STREAMED = """
import resource, sys, time
sys.path.insert(0, {root!r})
from imaging_assets.jump.profiles import iter_cell_profiles
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
cells = sum(b.num_rows for b in iter_cell_profiles({path!r}, "bench", source="s", batch="b", plate="P", images_per_batch=16))
seconds = time.perf_counter() - started
print(cells, seconds, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)
"""

REFERENCE = """
import resource, sqlite3, time
import pandas as pd
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
db = sqlite3.connect({path!r})
image = pd.read_sql("SELECT * FROM Per_Image", db)
cells = pd.read_sql("SELECT * FROM Per_Cells", db)
nuclei = pd.read_sql("SELECT * FROM Per_Nuclei", db)
cyto = pd.read_sql("SELECT * FROM Per_Cytoplasm", db)
merged = cyto.merge(cells, left_on=["ImageNumber", "Cytoplasm_Parent_Cells"], right_on=["ImageNumber", "ObjectNumber"], suffixes=("", "_cells"))
merged = merged.merge(nuclei, left_on=["ImageNumber", "Cytoplasm_Parent_Nuclei"], right_on=["ImageNumber", "ObjectNumber"], suffixes=("", "_nuclei"))
merged = merged.merge(image, on="ImageNumber")
seconds = time.perf_counter() - started
print(len(merged), seconds, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) / 1024)
"""


def measure(code: str) -> tuple[int, float, float]:
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    cells, seconds, rss = out.split()
    return int(cells), float(seconds), float(rss)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--cells", type=int, default=300)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "backend.sqlite"
        build(path, args.images, args.cells)
        size = path.stat().st_size / 1e6
        print(
            f"backend: {args.images} images x {args.cells} cells x 3 compartments x {len(FEATURES)} features, {size:.0f} MB"
        )
        for label, code in (
            ("(a) streamed, 16 images a batch", STREAMED),
            ("(b) reference, pandas whole tables", REFERENCE),
        ):
            cells, seconds, rss = measure(code.format(root=str(ROOT), path=str(path)))
            print(
                f"  {label:<38} {cells:7d} cells {cells / seconds:9.0f} cells/s  peak RSS +{rss:6.0f} MB"
            )


if __name__ == "__main__":
    main()
