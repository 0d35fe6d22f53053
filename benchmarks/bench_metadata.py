"""Benchmark: the JUMP metadata at full size (2,500 plates, ~1.1M wells, 117k compounds).

Writes the tables with the sample generator's scale mode, then times in one run:
  (a) this project: strict typed parsing (pyarrow.csv) and well_metadata (Arrow joins);
  (b) the reference: pandas.read_csv(dtype=str) of the same files and pandas merges, the way the
      JUMP notebooks usually build the same well table.
Arms alternate over rounds (ABBA) and each is reported as min / median / max.
Usage: .venv/bin/python benchmarks/bench_metadata.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import describe_machine  # noqa: E402

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
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds; arms alternate in order")
    args = parser.parse_args()
    print(describe_machine())
    arms = {
        "(a) strict Arrow parse + well_metadata": ours,
        "(b) pandas read_csv + merges": reference,
    }
    times: dict[str, list[tuple[float, float]]] = {label: [] for label in arms}
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        root = generate_metadata_at_scale(tmp)
        print(f"scale metadata written in {time.perf_counter() - started:.1f} s")
        rows = {}
        for round_ in range(args.rounds):
            # ABBA: each arm runs first in half the rounds, so file caches and a drifting
            # machine weigh on both alike
            order = list(arms) if round_ % 2 == 0 else list(reversed(arms))
            for label in order:
                started = time.perf_counter()
                rows[label], parsed = arms[label](root)
                done = time.perf_counter()
                times[label].append((parsed - started, done - parsed))
    print(f"{args.rounds} rounds, arms alternating; min / median / max seconds")
    for label, measured in times.items():
        parse = [p for p, _ in measured]
        join = [j for _, j in measured]
        print(f"  {label:<40} parse {_spread(parse)}, join {_spread(join)}, {rows[label]:,} wells")
    ratio = statistics.median(p for p, _ in times[next(iter(arms))]) / statistics.median(
        p for p, _ in times[list(arms)[1]]
    )
    print(f"  parse (a) / (b), medians: {ratio:.2f}x")


def _spread(values: list[float]) -> str:
    return f"{min(values):.2f} / {statistics.median(values):.2f} / {max(values):.2f}"


if __name__ == "__main__":
    main()
