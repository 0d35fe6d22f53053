"""Benchmark: the JUMP metadata at full size (2,500 plates, ~1.1M wells, 117k compounds).

Writes the tables with the sample generator's scale mode, then times in one run:
  (a) this project: strict typed parsing (pyarrow.csv) and well_metadata (Arrow joins);
  (b) the reference: pandas.read_csv(dtype=str) of the same files and pandas merges, the way the
      JUMP notebooks usually build the same well table.
Usage: python benchmarks/bench_metadata.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from imaging_assets.demo.gallery import generate_metadata_at_scale  # noqa: E402
from imaging_assets.jump.metadata import FILE_NAMES, read_metadata_table, well_metadata  # noqa: E402

TABLES = ["well", "plate", "compound", "perturbation_control", "orf", "crispr"]


def ours(root: Path):
    tables = {
        n: read_metadata_table(n, (root / FILE_NAMES[n]).read_bytes(), FILE_NAMES[n])
        for n in TABLES
    }
    parsed = time.perf_counter()
    result = well_metadata(
        tables["well"],
        tables["plate"],
        tables["perturbation_control"],
        tables["compound"],
        tables["orf"],
        tables["crispr"],
    )
    return result.num_rows, parsed


def reference(root: Path):
    frames = {n: pd.read_csv(root / FILE_NAMES[n], dtype=str) for n in TABLES}
    parsed = time.perf_counter()
    wells = frames["well"].merge(
        frames["plate"], on=["Metadata_Source", "Metadata_Plate"], how="left"
    )
    wells = wells.merge(frames["perturbation_control"], on="Metadata_JCP2022", how="left")
    wells = wells.merge(
        frames["compound"][["Metadata_JCP2022", "Metadata_InChIKey"]],
        on="Metadata_JCP2022",
        how="left",
    )
    symbols = pd.concat(
        [
            frames["orf"][["Metadata_JCP2022", "Metadata_Symbol"]],
            frames["crispr"][["Metadata_JCP2022", "Metadata_Symbol"]],
        ]
    )
    wells = wells.merge(
        symbols.drop_duplicates("Metadata_JCP2022"), on="Metadata_JCP2022", how="left"
    )
    wells["control_role"] = wells["Metadata_pert_type"].where(
        wells["Metadata_pert_type"].isin(["poscon", "negcon", "empty"]), "trt"
    )
    return len(wells), parsed


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        root = generate_metadata_at_scale(tmp)
        print(f"scale metadata written in {time.perf_counter() - started:.1f} s")
        for label, arm in (
            ("(a) strict Arrow parse + well_metadata", ours),
            ("(b) pandas read_csv + merges", reference),
        ):
            started = time.perf_counter()
            rows, parsed = arm(root)
            done = time.perf_counter()
            print(
                f"  {label:<40} parse {parsed - started:5.2f} s, join {done - parsed:5.2f} s, {rows:,} wells"
            )


if __name__ == "__main__":
    main()
