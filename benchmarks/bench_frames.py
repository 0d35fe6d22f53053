"""Benchmark: frame datasets in Lance (indexes, pushdown) vs the reference (PNG files + a frames
table read whole into pandas, filtered there, then the selected PNGs opened).

Builds --datasets OME-TIFFs (default 300 x 3 channels x 8 slices x 7 time points of 32x32 uint16 =
50,400 frames) over 5 projects, 4 microscopes and two years of acquisition times, then measures:
  ingest      this project (split page by page, hash, zstd Lance commit per dataset, summary on
              the dataset row; indexes built once at the end) vs tifffile alone reading every page;
  query       datasets by (project, date range, microscope): Lance with BITMAP/BTREE indexes vs
              pandas.read_sql of every dataset row + a pandas filter;
  partial     one (dataset, c, z-range, t) read into (T, C, Z, Y, X): Lance filter on indexed
              keys + decode vs read_sql of every frame row + a pandas filter + opening the PNGs.
The reference table lives in SQLite (PostgreSQL stand-in: same "read every row" pattern).
Times are medians of --repeats warm runs. Usage: python benchmarks/bench_frames.py [--datasets N]
"""

from __future__ import annotations

import argparse
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from imaging_assets.core.lake import Lake  # noqa: E402
from imaging_assets.core.stores import LocalStore  # noqa: E402
from imaging_assets.frames import reading  # noqa: E402
from imaging_assets.frames.indexes import ensure_indexes  # noqa: E402
from imaging_assets.frames.lake import ingest_dataset, register_manifest  # noqa: E402
from imaging_assets.frames.schema import DATASETS, FRAMES  # noqa: E402

PROJECTS = ["ISP", "RETINA", "ZEBRA", "KIDNEY", "IPSC"]
MICROSCOPES = ["Nikon-Ti2", "Zeiss-LSM980", "Leica-SP8", "Olympus-IX83"]


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def median_time(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def build(work: Path, n: int, shape: tuple[int, int, int, int, int]) -> list[dict]:
    """OME-TIFFs, the manifest, and the reference layout (one PNG per frame + SQLite rows)."""
    source = work / "source"
    pngs = work / "reference" / "frames"
    rng = np.random.default_rng(0)
    start = datetime(2024, 1, 1, 8, 0, 0)
    rows, frame_rows = [], []
    t_n, c_n, z_n, height, width = shape
    for i in range(n):
        project = PROJECTS[i % len(PROJECTS)]
        acquired = start + timedelta(hours=59 * i + (i % 7))
        dataset_id = f"{project}-{acquired:%Y-%m-%d-%H-%M-%S}-{i % 10000:04d}"
        microscope = MICROSCOPES[(i // 3) % len(MICROSCOPES)]
        array = rng.integers(0, 4096, size=shape, dtype=np.uint16)
        path = source / "tiffs" / f"{dataset_id}.ome.tif"
        path.parent.mkdir(parents=True, exist_ok=True)
        tifffile.imwrite(
            path,
            array,
            ome=True,
            photometric="minisblack",
            metadata={"axes": "TCZYX", "Channel": {"Name": [f"ch{c}" for c in range(c_n)]}},
        )
        folder = pngs / dataset_id
        folder.mkdir(parents=True, exist_ok=True)
        for t in range(t_n):
            for c in range(c_n):
                for z in range(z_n):
                    name = f"im_c{c:03d}_z{z:03d}_t{t:03d}_p000.png"
                    Image.fromarray(array[t, c, z]).save(folder / name)
                    frame_rows.append((dataset_id, c, z, t, 0, f"ch{c}", str(folder / name)))
        rows.append(
            {
                "dataset_id": dataset_id,
                "file": f"tiffs/{dataset_id}.ome.tif",
                "description": f"{project} acquisition {i} on {microscope}",
                "microscope": microscope,
                "upload_type": "frames",
                "format": "ome-tiff",
                "project": project,
                "acquired_at": acquired.isoformat(sep=" "),
            }
        )
    manifest = pd.DataFrame(rows)[
        ["dataset_id", "file", "description", "microscope", "upload_type", "format"]
    ]
    manifest.to_csv(source / "manifest.csv", index=False)
    db = sqlite3.connect(work / "reference" / "imaging.db")
    pd.DataFrame(rows).drop(columns=["file"]).to_sql("datasets", db, index=False)
    pd.DataFrame(
        frame_rows, columns=["dataset_id", "c", "z", "t", "p", "channel_name", "file_name"]
    ).to_sql("frames", db, index=False)
    db.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", type=int, default=300)
    parser.add_argument("--shape", default="7,3,8,32,32", help="T,C,Z,Y,X per dataset")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--indexed-tail", type=int, default=20, help="last datasets ingested as the asset does"
    )
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    shape = tuple(int(v) for v in args.shape.split(","))
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_frames_"))
    frames_per_dataset = int(np.prod(shape[:3]))
    total_frames = frames_per_dataset * args.datasets
    print(f"machine: {os.cpu_count()} cores ({cpu_model()}), python {platform.python_version()}")
    print(
        f"data: {args.datasets} datasets x {frames_per_dataset} frames = {total_frames:,} frames of "
        f"{shape[3]}x{shape[4]} uint16; work dir {work}"
    )

    started = time.perf_counter()
    rows = build(work, args.datasets, shape)
    print(
        f"built OME-TIFFs, PNGs and the SQLite reference in {time.perf_counter() - started:.1f} s"
    )

    # -- ingest ---------------------------------------------------------------------------------
    tiffs = sorted((work / "source" / "tiffs").glob("*.ome.tif"))
    started = time.perf_counter()
    pages = 0
    for path in tiffs:
        with tifffile.TiffFile(path) as tif:
            for page in tif.series[0].pages:
                page.asarray()
                pages += 1
    tifffile_s = time.perf_counter() - started

    store = LocalStore(work / "lake")
    lake = Lake.open(store.root)
    source = LocalStore(work / "source")
    started = time.perf_counter()
    register_manifest(lake, source, "manifest.csv", "bench")
    register_s = time.perf_counter() - started
    bulk, tail = rows[: -args.indexed_tail], rows[-args.indexed_tail :]
    started = time.perf_counter()
    for row in bulk:
        ingest_dataset(lake, source, row["dataset_id"], "bench", index=False)
    ingest_s = time.perf_counter() - started
    started = time.perf_counter()
    ensure_indexes(lake.uri(FRAMES), FRAMES)
    ensure_indexes(lake.uri(DATASETS), DATASETS, compact_above_fragments=1)
    ensure_indexes(lake.uri(DATASETS), DATASETS)
    index_s = time.perf_counter() - started
    started = time.perf_counter()
    for row in tail:  # as the asset does it: indexes brought up to date after each dataset
        ingest_dataset(lake, source, row["dataset_id"], "bench")
    tail_s = time.perf_counter() - started
    lance_bytes = lance_dataset_size(work / "lake" / "frames.lance")  # before any re-ingest
    started = time.perf_counter()
    reingest = [r["dataset_id"] for r in rows[:: max(1, len(rows) // 10)]][:10]
    for dataset_id in reingest:  # replace in one merge_insert commit
        ingest_dataset(lake, source, dataset_id, "bench")
    reingest_s = time.perf_counter() - started
    print("\ningest")
    print(f"  tifffile alone (every page decoded):   {pages / tifffile_s:10,.0f} frames/s")
    bulk_frames = frames_per_dataset * len(bulk)
    print(
        f"  this project, bulk ({len(bulk)} datasets, indexes at the end): "
        f"{bulk_frames / ingest_s:10,.0f} frames/s ({ingest_s:.1f} s, "
        f"{ingest_s / len(bulk) * 1000:.0f} ms per dataset)"
    )
    print(
        f"  this project, as the asset ({len(tail)} datasets, indexes updated each): "
        f"{frames_per_dataset * len(tail) / tail_s:10,.0f} frames/s "
        f"({tail_s / len(tail) * 1000:.0f} ms per dataset)"
    )
    print(
        f"  re-ingest (merge_insert replace) of {len(reingest)} datasets: "
        f"{reingest_s / len(reingest) * 1000:.0f} ms per dataset"
    )
    print(f"  registration of {len(rows)} datasets:     {register_s:10.2f} s")
    print(f"  index build at the end (all tables):   {index_s:10.2f} s")

    # -- query ----------------------------------------------------------------------------------
    project, microscope = "ZEBRA", "Leica-SP8"
    start, end = "2024-03-01", "2025-06-30"
    db_path = work / "reference" / "imaging.db"

    def lance_query():
        return reading.query_datasets(
            lake.root, project=project, start=start, end=end, microscope=microscope
        ).column("dataset_id")

    def pandas_query():
        with sqlite3.connect(db_path) as db:
            table = pd.read_sql("SELECT * FROM datasets", db, parse_dates=["acquired_at"])
        mask = (
            (table.project == project)
            & (table.acquired_at >= pd.Timestamp(start))
            & (table.acquired_at <= pd.Timestamp(end) + pd.Timedelta(days=1))
            & (table.microscope == microscope)
        )
        return table[mask].dataset_id

    lance_q, ids_lance = median_time(lance_query, args.repeats)
    pandas_q, ids_pandas = median_time(pandas_query, args.repeats)
    assert sorted(ids_lance.to_pylist()) == sorted(ids_pandas.tolist())
    print(f"\nquery datasets by (project, date range, microscope): {len(ids_lance)} datasets")
    print(f"  this project (Lance, indexes):        {lance_q * 1000:10.2f} ms")
    print(f"  reference (all rows -> pandas):       {pandas_q * 1000:10.2f} ms")

    # -- partial read ---------------------------------------------------------------------------
    target = ids_lance[len(ids_lance) // 2].as_py() if len(ids_lance) else rows[-1]["dataset_id"]
    c, zs, t = 1, [2, 3, 4, 5], 3

    def lance_read():
        return reading.read_frames(lake.root, target, c=c, z=zs, t=t)

    def pandas_read():
        with sqlite3.connect(db_path) as db:
            table = pd.read_sql("SELECT * FROM frames", db)
        mask = (
            (table.dataset_id == target)
            & (table.c == c)
            & (table.z.isin(zs))
            & (table.t == t)
            & (table.p == 0)
        )
        chosen = table[mask].sort_values("z")
        stack = np.stack([np.asarray(Image.open(f)) for f in chosen.file_name])
        return stack.reshape(1, 1, len(zs), *stack.shape[-2:])

    lance_r, a = median_time(lance_read, args.repeats)
    pandas_r, b = median_time(pandas_read, max(3, args.repeats // 2))
    np.testing.assert_array_equal(a, b)
    frames_table = reading._open(lake.root, FRAMES, None)  # noqa: SLF001
    from imaging_assets.frames.queries import frames_filter

    plan = frames_table.scanner(
        filter=frames_filter(target, [c], zs, [t], [0]), columns=["frame_key"]
    ).analyze_plan()
    scanned = plan.split("rows_scanned=")[1].split(",")[0]
    print(f"\npartial read of {target} c={c} z={zs[0]}-{zs[-1]} t={t} -> {a.shape}")
    print(
        f"  this project (Lance, indexed keys):   {lance_r * 1000:10.2f} ms  (rows scanned {scanned})"
    )
    print(f"  reference (all rows -> pandas + PNG): {pandas_r * 1000:10.2f} ms")
    print(
        f"\nframes.lance {lance_bytes / 1e6:.1f} MB; PNGs "
        f"{dir_size(work / 'reference' / 'frames') / 1e6:.1f} MB; raw {total_frames * shape[3] * shape[4] * 2 / 1e6:.1f} MB"
    )


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def lance_dataset_size(path: Path) -> int:
    return dir_size(path / "data")


if __name__ == "__main__":
    main()
