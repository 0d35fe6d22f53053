"""Benchmark: single-cell profiles at JUMP's real width, Lance vector layout vs CytoTable's Parquet.

Builds, once, synthetic CellProfiler backends with the real schema (column names, order and value
kinds of a real JUMP plate: 5,792 object columns over Cells, Cytoplasm and Nuclei; see
imaging_assets_tests/jump/profiles/synthetic_backend.py), default 334 images x 300 cells
(100,200 cells), then measures in the same run:

  write   SQLite backend -> joined batches -> lance.write_dataset from the stream (one commit):
          cells/s and peak RSS of a fresh process, for this code at real width (100k and 20k
          cells: flat in cells) and at the narrower width where the former code still works
          (600 features per compartment, 20k cells), against the former code (git 51504bc,
          one SQL join, one column per feature) at that width;
  reads   one cell by cell_id (BTREE), ten named features of the plate, the whole feature
          matrix, against Parquet written the way CytoTable writes it (pyarrow ParquetWriter,
          its default snappy, dictionary on, one float64 column per feature, row groups of
          1,000 rows, its chunk size) from the same cells; medians of --repeat runs, warm cache;
  bytes   on disk of each.

Usage: python benchmarks/bench_cells.py [--images 334] [--workdir DIR (reused if present)]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import lance  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from imaging_assets.jump.profiles import ensure_feature_set, plan_cell_profiles  # noqa: E402
from imaging_assets.read.profiles import cell_profile, feature_matrix  # noqa: E402
from imaging_assets_tests.jump.profiles.synthetic_backend import (  # noqa: E402
    real_schema,
    write_backend,
)

FORMER_CODE = "51504bc:imaging_assets/jump/profiles/single_cell.py"
REAL_FIXTURES = ROOT.parent / "shared" / "fixtures" / "real"
PLATE = "P1"
CYTOTABLE_ROW_GROUP = 1000  # CytoTable's default chunk size: one row group per joined chunk

WRITE = """
import json, resource, sys, time
sys.path.insert(0, {root!r})
import lance, pyarrow as pa
import imaging_assets.jump.profiles, imaging_assets.read.profiles
start_rss = int(open("/proc/self/statm").read().split()[1]) * resource.getpagesize() / 2**20
if {former}:
    sys.path.insert(0, {workdir!r})
    from former_single_cell import iter_cell_profiles, cell_profiles_schema_from_sqlite as plan
    schema = plan({backend!r})
    batches = iter_cell_profiles({backend!r}, "b", source="s", batch="b", plate={plate!r})
else:
    from imaging_assets.jump.profiles import iter_cell_profile_batches, plan_cell_profiles
    schema = plan_cell_profiles({backend!r}).schema
    batches = iter_cell_profile_batches({backend!r}, "b", source="s", batch="b", plate={plate!r})
counted = [0]
def stream():
    for batch in batches:
        counted[0] += batch.num_rows
        yield batch
started = time.perf_counter()
lance.write_dataset(pa.RecordBatchReader.from_batches(schema, stream()), {uri!r})
seconds = time.perf_counter() - started
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"cells": counted[0], "seconds": seconds, "rss_mb": rss, "start_mb": start_rss}}))
"""


def machine() -> str:
    model = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{model}, {os.cpu_count()} cores, {memory:.0f} GiB RAM, {platform.python_version()}"


def size_of(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def median_time(function, repeat: int) -> float:
    times = []
    for i in range(repeat):
        started = time.perf_counter()
        function(i)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def backend(workdir: Path, name: str, schema, images: int, cells: int) -> Path:
    path = workdir / f"{name}.sqlite"
    if not path.exists():
        started = time.perf_counter()
        partial = path.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        write_backend(partial, schema, images=images, cells_per_image=cells, distinct_images=10)
        partial.rename(path)
        print(
            f"  built {path.name}: {size_of(path) / 1e9:.1f} GB in {time.perf_counter() - started:.0f} s"
        )
    return path


def write(workdir: Path, backend_path: Path, uri: Path, former: bool) -> dict:
    shutil.rmtree(uri, ignore_errors=True)
    code = WRITE.format(
        root=str(ROOT),
        workdir=str(workdir),
        former=former,
        backend=str(backend_path),
        plate=PLATE,
        uri=str(uri),
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def former_code(workdir: Path) -> None:
    source = subprocess.run(
        ["git", "-C", str(ROOT), "show", FORMER_CODE], capture_output=True, text=True, check=True
    ).stdout
    (workdir / "former_single_cell.py").write_text(source)


def cytotable_parquet(dataset: lance.LanceDataset, names: list[str], path: Path) -> float:
    """The cells as CytoTable writes them: wide float64, snappy, 1,000-row row groups."""
    started = time.perf_counter()
    keys = ["cell_id", "site_key", "plate", "well", "site", "image_number", "object_number"]
    writer = None
    for batch in dataset.to_batches(columns=[*keys, "features"], batch_size=CYTOTABLE_ROW_GROUP):
        flat = batch["features"].values.to_numpy().reshape(batch.num_rows, len(names))
        columns = {f"Metadata_{k}": batch[k] for k in keys}
        columns.update({n: pa.array(flat[:, j]) for j, n in enumerate(names)})
        table = pa.table(columns)
        writer = writer or pq.ParquetWriter(path, table.schema)
        writer.write_table(table)
    writer.close()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=334)
    parser.add_argument("--cells", type=int, default=300, help="cells per image")
    parser.add_argument("--small-images", type=int, default=67, help="images of the 20k backends")
    parser.add_argument("--narrow", type=int, default=600, help="features per compartment")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument(
        "--reads-only", action="store_true", help="reuse the workdir's lake, skip the writes"
    )
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="bench_cells_"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}")
    print(f"lance {lance.__version__}, pyarrow {pa.__version__}, workdir {workdir}")
    schema = real_schema(REAL_FIXTURES)
    narrow = schema.narrowed(args.narrow)
    real = backend(workdir, "real", schema, args.images, args.cells)
    real_small = backend(workdir, "real_small", schema, args.small_images, args.cells)
    narrow_small = backend(workdir, "narrow_small", narrow, args.small_images, args.cells)
    former_code(workdir)

    rows: list[tuple[str, str, str]] = []
    features = len(plan_cell_profiles(real).feature_set)
    narrow_features = len(plan_cell_profiles(narrow_small).feature_set)
    uri = workdir / "lake" / "cell_profiles.lance"
    writes = [
        (f"this code, {features} features", real, uri, False),
        (f"this code, {features} features", real_small, workdir / "w1.lance", False),
        (f"this code, {narrow_features} features", narrow_small, workdir / "w2.lance", False),
        (f"former code, {narrow_features} features", narrow_small, workdir / "w3.lance", True),
    ]
    if args.reads_only and uri.exists():
        writes = []  # the lake of an earlier run in this workdir: measure the reads only
    for label, path, target, former in writes:
        result = write(workdir, path, target, former)
        rows.append(
            (
                f"write {label}, {result['cells']:,} cells",
                f"{result['cells'] / result['seconds']:,.0f} cells/s, peak RSS "
                f"{result['rss_mb']:,.0f} MB (+{result['rss_mb'] - result['start_mb']:,.0f})",
                "",
            )
        )
        print(f"  {rows[-1][0]}: {rows[-1][1]}")
    for target in (workdir / "w1.lance", workdir / "w2.lance", workdir / "w3.lance"):
        shutil.rmtree(target, ignore_errors=True)
    try:
        if args.reads_only:
            raise FileNotFoundError("skipped (--reads-only)")
        write(workdir, real, workdir / "w4.lance", True)
        rows.append((f"write former code, {features} features", "worked", ""))
    except FileNotFoundError as skipped:
        rows.append((f"write former code, {features} features", str(skipped), ""))
    except subprocess.CalledProcessError as error:
        lines = error.stderr.strip().splitlines() or ["failed"]
        reason = next((line for line in lines if "OperationalError" in line), lines[-1])
        rows.append((f"write former code, {features} features", reason.strip()[:70], ""))
    shutil.rmtree(workdir / "w4.lance", ignore_errors=True)

    plan = plan_cell_profiles(real)
    ensure_feature_set(str(uri.parent / "feature_sets.lance"), plan.feature_set)
    dataset = lance.dataset(str(uri))
    if not dataset.list_indices():
        dataset.create_scalar_index("cell_id", "BTREE")
    dataset = lance.dataset(str(uri))
    names = list(plan.feature_set.names)
    parquet = workdir / "cytotable.parquet"
    if not parquet.exists():
        print(f"  wrote {parquet.name} in {cytotable_parquet(dataset, names, parquet):.0f} s")
    cell_ids = dataset.to_table(columns=["cell_id"])["cell_id"]
    rng = np.random.default_rng(0)
    picks = [cell_ids[int(i)].as_py() for i in rng.choice(len(cell_ids), size=max(args.repeat, 50))]
    ten = names[:: len(names) // 10][:10]
    where = f"plate = '{PLATE}'"

    def lance_reads(data: lance.LanceDataset) -> list[str]:
        for cell_id in picks:  # warm: the index pages and the rows in the page cache
            cell_profile(data, cell_id)
        one = median_time(lambda i: cell_profile(data, picks[i]), len(picks))
        ten_features = median_time(lambda i: feature_matrix(data, where, ten), args.repeat)
        everything = median_time(lambda i: feature_matrix(data, where), repeat_big)
        return [
            f"{one * 1e3:.2f} ms",
            f"{ten_features:.2f} s",
            f"{everything:.2f} s",
            f"{size_of(Path(data.uri)) / 1e9:.2f} GB",
        ]

    def parquet_matrix(_):
        """Row group by row group into one array: pq.read_table of all 5,789 columns at once
        was killed at 24 GiB (measured), reading row groups peaks at ~5.3 GB."""
        file = pq.ParquetFile(parquet)
        matrix = np.empty((file.metadata.num_rows, len(names)))
        start = 0
        for group in range(file.num_row_groups):
            table = file.read_row_group(group, columns=names)
            for j, column in enumerate(table.columns):
                matrix[start : start + table.num_rows, j] = column.to_numpy()
            start += table.num_rows
        return matrix

    repeat_big = max(3, args.repeat // 2)
    gc.collect()
    ours = lance_reads(dataset)
    v2_0 = workdir / "lake_2_0" / "cell_profiles.lance"  # the same rows in Lance's 2.0 files
    if not v2_0.exists():
        reader = dataset.to_batches(batch_size=1024)
        schema = dataset.schema
        lance.write_dataset(
            pa.RecordBatchReader.from_batches(schema, reader), v2_0, data_storage_version="2.0"
        )
        shutil.copytree(uri.parent / "feature_sets.lance", v2_0.parent / "feature_sets.lance")
        lance.dataset(str(v2_0)).create_scalar_index("cell_id", "BTREE")
    older = lance_reads(lance.dataset(str(v2_0)))
    gc.collect()
    parquet_one = median_time(
        lambda i: pq.read_table(parquet, filters=[("Metadata_cell_id", "=", picks[i % 2])]),
        args.repeat,
    )  # two cells read in turn: warm after the first two
    parquet_ten = median_time(
        lambda i: np.column_stack(
            [c.to_numpy() for c in pq.read_table(parquet, columns=ten).columns]
        ),
        args.repeat,
    )
    parquet_all = median_time(parquet_matrix, repeat_big)
    theirs = [
        f"{parquet_one * 1e3:.0f} ms",
        f"{parquet_ten:.2f} s",
        f"{parquet_all:.2f} s",
        f"{size_of(parquet) / 1e9:.2f} GB",
    ]
    measures = [
        "one cell by cell_id (medians: 50 cells; Parquet 5)",
        "ten named features of the plate",
        f"whole feature matrix ({len(cell_ids):,} x {len(names):,})",
        "bytes on disk",
    ]
    version = dataset.data_storage_version
    header = ("measure", f"Lance {version} (default)", "Lance 2.0 files", "Parquet (CytoTable)")
    table = [(m, a, b, c) for m, a, b, c in zip(measures, ours, older, theirs, strict=True)]
    table += [(m, w, "", "") for m, w, _ in rows]
    width = max(len(r[0]) for r in table)
    print()
    for line in [header, *table]:
        print(f"{line[0]:<{width}}  {line[1]:<42}  {line[2]:<16}  {line[3]}")


if __name__ == "__main__":
    main()
