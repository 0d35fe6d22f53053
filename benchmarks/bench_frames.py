"""Benchmark: frame datasets in this project's Lance lake vs imagingDB's own design, in one run.

imagingDB (czbiohub/imagingDB) keeps one row per frame in PostgreSQL (data_set -> frames_global ->
frames: channel, slice, time and position indices, file name, sha256) and one PNG file per frame
(written with cv2.imwrite, read back with cv2.imread, i.e. libpng); a partial download is one SQL
query over the joined tables, then opening the selected frames' files. The reference arm is that
design on this machine: the same three tables in SQLite (a persistent connection), indexes
covering the selection (data_set.dataset_serial, frames_global.dataset_id and frames
(frames_global_id, channel_idx, time_idx, pos_idx, slice_idx)), one PNG per frame under
raw_frames/<dataset>/im_c000_z000_t000_p000.png; a read = one indexed SQL query + decoding each
selected PNG into one preallocated array, with libpng (imagecodecs.png_decode, the library
cv2.imread uses) and with Pillow.

Builds --datasets OME-TIFFs (default 300 x 7 time points x 3 channels x 8 slices of 32x32 uint16
= 50,400 frames) over 5 projects, 4 microscopes and two years of acquisition times, ingests them,
then measures:
  ingest   this project (split page by page, hash, zstd Lance commit per dataset, summary on the
           dataset row; indexes built once at the end) vs tifffile alone reading every page;
  query    datasets by (project, date range, microscope): Lance with BITMAP/BTREE indexes vs one
           indexed SQL query;
  partial  random selections (dataset, c, a run of --z-span slices, t) read into (T, C, Z, Y, X),
           every arm on the same selection in a shuffled order, results checked equal:
           first reads (each dataset's first read in this process: nothing of it cached yet) and
           --repeats random selections after that; p50 / p95 per arm. The ablation arms rebuild
           the read path one change at a time (what each change bought).
Real frames are larger: run again with --shape 7,3,8,512,512 --datasets 20.

Usage: python benchmarks/bench_frames.py [--datasets N] [--shape T,C,Z,Y,X] [--repeats N]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import platform
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import imagecodecs
import lance
import numpy as np
import pyarrow as pa
import tifffile
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_common import cpu_model, load_average  # noqa: E402

from imaging_assets.core.lake import Lake  # noqa: E402
from imaging_assets.core.lance_tables import quote  # noqa: E402
from imaging_assets.core.stores import LocalStore  # noqa: E402
from imaging_assets.frames import reading  # noqa: E402
from imaging_assets.frames.indexes import ensure_indexes  # noqa: E402
from imaging_assets.frames.ingest import decode_pixels  # noqa: E402
from imaging_assets.frames.lake import ingest_dataset, register_manifest  # noqa: E402
from imaging_assets.frames.queries import frames_filter  # noqa: E402
from imaging_assets.frames.schema import DATASETS, FRAMES  # noqa: E402
from imaging_assets.read import open_lake  # noqa: E402

PROJECTS = ["ISP", "RETINA", "ZEBRA", "KIDNEY", "IPSC"]
MICROSCOPES = ["Nikon-Ti2", "Zeiss-LSM980", "Leica-SP8", "Olympus-IX83"]

REFERENCE_SCHEMA = """
CREATE TABLE data_set (
    id INTEGER PRIMARY KEY, dataset_serial TEXT NOT NULL UNIQUE, project TEXT,
    date_time TEXT, microscope TEXT, description TEXT, frames INTEGER, parent_id INTEGER);
CREATE TABLE frames_global (
    id INTEGER PRIMARY KEY, dataset_id INTEGER NOT NULL REFERENCES data_set(id),
    storage_dir TEXT, nbr_frames INTEGER, im_width INTEGER, im_height INTEGER,
    nbr_slices INTEGER, nbr_channels INTEGER, nbr_timepoints INTEGER, nbr_positions INTEGER,
    im_colors INTEGER, bit_depth TEXT, metadata_json TEXT);
CREATE TABLE frames (
    id INTEGER PRIMARY KEY, frames_global_id INTEGER NOT NULL REFERENCES frames_global(id),
    channel_idx INTEGER, slice_idx INTEGER, time_idx INTEGER, pos_idx INTEGER,
    channel_name TEXT, file_name TEXT, sha256 TEXT, metadata_json TEXT);
CREATE INDEX frames_global_dataset ON frames_global (dataset_id);
CREATE INDEX frames_selection ON frames
    (frames_global_id, channel_idx, time_idx, pos_idx, slice_idx);
CREATE INDEX data_set_query ON data_set (project, microscope, date_time);
"""
REFERENCE_QUERY = """
SELECT f.slice_idx, f.file_name, g.storage_dir, g.im_height, g.im_width, g.bit_depth
FROM frames f JOIN frames_global g ON f.frames_global_id = g.id
JOIN data_set d ON g.dataset_id = d.id
WHERE d.dataset_serial = ? AND f.channel_idx = ? AND f.time_idx = ? AND f.pos_idx = ?
  AND f.slice_idx BETWEEN ? AND ?
ORDER BY f.slice_idx
"""


def median_time(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def build(work: Path, n: int, shape: tuple[int, int, int, int, int]) -> list[dict]:
    """OME-TIFFs and the manifest (the ingest's input), and imagingDB's layout of the same
    frames: one PNG per frame under raw_frames/<dataset>/ and the SQLite tables."""
    source = work / "source"
    storage = work / "reference" / "raw_frames"
    rng = np.random.default_rng(0)
    start = datetime(2024, 1, 1, 8, 0, 0)
    rows = []
    t_n, c_n, z_n, height, width = shape
    (work / "reference").mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(work / "reference" / "imaging.db")
    db.executescript(REFERENCE_SCHEMA)
    for i in range(n):
        project = PROJECTS[i % len(PROJECTS)]
        acquired = start + timedelta(hours=59 * i + (i % 7))
        dataset_id = f"{project}-{acquired:%Y-%m-%d-%H-%M-%S}-{i % 10000:04d}"
        microscope = MICROSCOPES[(i // 3) % len(MICROSCOPES)]
        array = rng.integers(0, 4096, size=shape, dtype=np.uint16)
        path = source / "tiffs" / f"{dataset_id}.ome.tif"
        path.parent.mkdir(parents=True, exist_ok=True)
        names = [f"ch{c}" for c in range(c_n)]
        tifffile.imwrite(
            path,
            array,
            ome=True,
            photometric="minisblack",
            metadata={"axes": "TCZYX", "Channel": {"Name": names}},
        )
        folder = storage / dataset_id
        folder.mkdir(parents=True, exist_ok=True)
        description = f"{project} acquisition {i} on {microscope}"
        db.execute(
            "INSERT INTO data_set VALUES (?, ?, ?, ?, ?, ?, 1, NULL)",
            (i + 1, dataset_id, project, acquired.isoformat(sep=" "), microscope, description),
        )
        db.execute(
            "INSERT INTO frames_global VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 1, 1, 'uint16', '{}')",
            (i + 1, i + 1, str(folder), t_n * c_n * z_n, width, height, z_n, c_n, t_n),
        )
        frames = []
        for t in range(t_n):
            for c in range(c_n):
                for z in range(z_n):
                    name = f"im_c{c:03d}_z{z:03d}_t{t:03d}_p000.png"
                    frame = array[t, c, z]
                    (folder / name).write_bytes(imagecodecs.png_encode(frame, level=1))
                    sha = hashlib.sha256(frame.tobytes()).hexdigest()
                    frames.append((i + 1, c, z, t, 0, names[c], name, sha, "{}"))
        db.executemany(
            "INSERT INTO frames (frames_global_id, channel_idx, slice_idx, time_idx, pos_idx, "
            "channel_name, file_name, sha256, metadata_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            frames,
        )
        rows.append(
            {
                "dataset_id": dataset_id,
                "file": f"tiffs/{dataset_id}.ome.tif",
                "description": description,
                "microscope": microscope,
                "upload_type": "frames",
                "format": "ome-tiff",
            }
        )
    db.commit()
    db.execute("ANALYZE")
    db.close()
    with open(source / "manifest.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows


# -- the reference: imagingDB's design ----------------------------------------------------------


class ImagingDB:
    """A partial read as imagingDB does it: one indexed SQL query, then one PNG per frame."""

    def __init__(self, db_path: Path) -> None:
        self.db = sqlite3.connect(db_path, check_same_thread=False)

    def read(self, decode: Callable[[str], np.ndarray], dataset_id, c, zs, t) -> np.ndarray:
        rows = self.db.execute(REFERENCE_QUERY, (dataset_id, c, t, 0, zs[0], zs[-1])).fetchall()
        _, _, folder, height, width, bit_depth = rows[0]
        out = np.empty((1, 1, len(rows), height, width), dtype=bit_depth)
        for i, (_, name, *_rest) in enumerate(rows):
            out[0, 0, i] = decode(os.path.join(folder, name))
        return out


def png_libpng(path: str) -> np.ndarray:
    with open(path, "rb") as handle:
        return imagecodecs.png_decode(handle.read())


def png_pillow(path: str) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image)


# -- this project's read path, rebuilt one change at a time (ablation) --------------------------


def before_read(root: str, dataset_id: str, c: int, zs: list[int], t: int) -> np.ndarray:
    """The read path as it was: both tables opened afresh, the dataset row read, then one scan
    filtered on the indexed keys returning the pixels."""
    datasets = lance.dataset(f"{root}/{DATASETS}.lance")
    row = datasets.to_table(filter=f"dataset_id = {quote(dataset_id)}", limit=1).to_pylist()[0]
    json.loads(row["summary"])
    frames = lance.dataset(f"{root}/{FRAMES}.lance")
    return _scan(frames, dataset_id, c, zs, t)


def _scan(frames: lance.LanceDataset, dataset_id: str, c: int, zs: list[int], t: int):
    table = frames.to_table(
        columns=["z", "pixels", "height", "width", "dtype"],
        filter=frames_filter(dataset_id, [c], zs, [t], [0]),
    )
    out = None
    for row in table.to_pylist():
        frame = decode_pixels(row["pixels"], row["dtype"], row["height"], row["width"])
        if out is None:
            out = np.empty((1, 1, len(zs), *frame.shape), dtype=frame.dtype.newbyteorder("="))
        out[0, 0, zs.index(row["z"])] = frame
    return out


def session_scan_read(root: str, dataset_id: str, c: int, zs: list[int], t: int) -> np.ndarray:
    """+ one Lance session and the latest handle reused (version checked), no dataset row: the
    same filtered scan."""
    return _scan(reading._open(root, FRAMES, None), dataset_id, c, zs, t)  # noqa: SLF001


def directory_take_read(root: str, dataset_id: str, c: int, zs: list[int], t: int) -> np.ndarray:
    """+ the frame directory (cached per version): no scan, Lance's dataset take by address."""
    snapshot = reading._snapshot(root, FRAMES, None)  # noqa: SLF001
    directory = reading._directory(snapshot, dataset_id)  # noqa: SLF001
    entries = [directory.entries[(c, z, t, 0)] for z in zs]
    taken = snapshot.dataset._take_rows([e.row_id for e in entries], columns=["pixels"])  # noqa: SLF001
    first = entries[0]
    out = np.empty((1, 1, len(zs), first.height, first.width), dtype=first.dtype)
    for i, (entry, value) in enumerate(zip(entries, taken.column(0).to_pylist(), strict=True)):
        out[0, 0, i] = decode_pixels(value, entry.dtype, entry.height, entry.width)
    return out


# -- measurement ----------------------------------------------------------------------------------


def run_arms(arms: dict[str, Callable], selections: list[tuple], seed: int) -> dict[str, list]:
    """Every arm on every selection, in a shuffled order per selection; results checked equal."""
    rng = random.Random(seed)
    times: dict[str, list[float]] = {name: [] for name in arms}
    for selection in selections:
        names = list(arms)
        rng.shuffle(names)
        results = {}
        for name in names:
            started = time.perf_counter()
            results[name] = arms[name](*selection)
            times[name].append(time.perf_counter() - started)
        expected = results[names[0]]
        for name in names[1:]:
            np.testing.assert_array_equal(results[name], expected, err_msg=name)
    return times


def report(title: str, times: dict[str, list[float]]) -> None:
    count = len(next(iter(times.values())))
    print(f"\n{title} ({count} selections)")
    print(f"  {'arm':58s} {'p50 ms':>8s} {'p95 ms':>8s} {'mean ms':>8s}")
    for name, values in times.items():
        values = sorted(values)
        p50 = values[len(values) // 2]
        p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
        print(
            f"  {name:58s} {p50 * 1e3:8.3f} {p95 * 1e3:8.3f} {statistics.fmean(values) * 1e3:8.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--datasets", type=int, default=300)
    parser.add_argument("--shape", default="7,3,8,32,32", help="T,C,Z,Y,X per dataset")
    parser.add_argument("--repeats", type=int, default=2000, help="random selections (warm)")
    parser.add_argument("--z-span", type=int, default=4, help="slices per selection")
    parser.add_argument("--ablation", type=int, default=300, help="selections of the ablation")
    parser.add_argument("--query-repeats", type=int, default=7)
    parser.add_argument(
        "--indexed-tail", type=int, default=20, help="last datasets ingested as the asset does"
    )
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    shape = tuple(int(v) for v in args.shape.split(","))
    t_n, c_n, z_n, height, width = shape
    z_span = min(args.z_span, z_n)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="bench_frames_"))
    frames_per_dataset = t_n * c_n * z_n
    total_frames = frames_per_dataset * args.datasets
    print(
        f"machine: {os.cpu_count()} cores ({cpu_model()}), python {platform.python_version()}, "
        f"pylance {lance.__version__}, pyarrow {pa.__version__}, sqlite {sqlite3.sqlite_version}, "
        f"imagecodecs {imagecodecs.__version__}; load average at start {load_average(' ')}"
    )
    print(
        f"data: {args.datasets} datasets x {frames_per_dataset} frames = {total_frames:,} frames of "
        f"{height}x{width} uint16; work dir {work}"
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

    lake = Lake.open(LocalStore(work / "lake").root)
    source = LocalStore(work / "source")
    started = time.perf_counter()
    register_manifest(lake, source, "manifest.csv", "bench")
    register_s = time.perf_counter() - started
    tail_n = min(args.indexed_tail, len(rows) // 2)
    bulk, tail = rows[: len(rows) - tail_n], rows[len(rows) - tail_n :]
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
    lance_bytes = dir_size(work / "lake" / "frames.lance" / "data")  # before any re-ingest
    started = time.perf_counter()
    reingest = [r["dataset_id"] for r in rows[:: max(1, len(rows) // 10)]][:10]
    for dataset_id in reingest:  # replace in one commit
        ingest_dataset(lake, source, dataset_id, "bench")
    reingest_s = time.perf_counter() - started
    print("\ningest")
    print(f"  tifffile alone (every page decoded):   {pages / tifffile_s:10,.0f} frames/s")
    print(
        f"  this project, bulk ({len(bulk)} datasets, indexes at the end): "
        f"{frames_per_dataset * len(bulk) / ingest_s:10,.0f} frames/s ({ingest_s:.1f} s, "
        f"{ingest_s / len(bulk) * 1000:.0f} ms per dataset)"
    )
    if tail:
        print(
            f"  this project, as the asset ({len(tail)} datasets, indexes updated each): "
            f"{frames_per_dataset * len(tail) / tail_s:10,.0f} frames/s "
            f"({tail_s / len(tail) * 1000:.0f} ms per dataset)"
        )
    print(
        f"  re-ingest (replace in one commit) of {len(reingest)} datasets: "
        f"{reingest_s / len(reingest) * 1000:.0f} ms per dataset"
    )
    print(f"  registration of {len(rows)} datasets:     {register_s:10.2f} s")
    print(f"  index build at the end (all tables):   {index_s:10.2f} s")

    # -- query ----------------------------------------------------------------------------------
    project, microscope = "ZEBRA", "Leica-SP8"
    start, end = "2024-03-01", "2025-06-30"
    reference = ImagingDB(work / "reference" / "imaging.db")

    def lance_query():
        return reading.query_datasets(
            lake.root, project=project, start=start, end=end, microscope=microscope
        ).column("dataset_id")

    def sql_query():
        return reference.db.execute(
            "SELECT dataset_serial FROM data_set WHERE project = ? AND microscope = ? "
            "AND date_time >= ? AND date_time <= ? ORDER BY date_time",
            (project, microscope, start, end + " 23:59:59.999999"),
        ).fetchall()

    lance_q, ids_lance = median_time(lance_query, args.query_repeats)
    sql_q, ids_sql = median_time(sql_query, args.query_repeats)
    assert sorted(ids_lance.to_pylist()) == sorted(r[0] for r in ids_sql)
    print(f"\nquery datasets by (project, date range, microscope): {len(ids_lance)} datasets")
    print(f"  this project (Lance, indexes, session reused): {lance_q * 1000:8.2f} ms")
    print(f"  imagingDB design (indexed SQL, SQLite):        {sql_q * 1000:8.3f} ms")

    # -- partial reads ----------------------------------------------------------------------------
    ids = [r["dataset_id"] for r in rows]
    rng = random.Random(42)

    def selection(dataset_id: str) -> tuple:
        z0 = rng.randrange(z_n - z_span + 1)
        return (dataset_id, rng.randrange(c_n), list(range(z0, z0 + z_span)), rng.randrange(t_n))

    def project_read(dataset_id, c, zs, t):
        return reading.read_frames(lake.root, dataset_id, c=c, z=zs, t=t)

    read_api = open_lake(lake.root)
    arms = {
        "this project: frames.reading.read_frames": project_read,
        "this project: read API open_lake(root).frames": lambda d, c, zs, t: read_api.frames(
            d, c=c, z=zs, t=t
        ),
        "imagingDB design: indexed SQL + PNG (libpng)": lambda *s: reference.read(png_libpng, *s),
        "imagingDB design: indexed SQL + PNG (Pillow)": lambda *s: reference.read(png_pillow, *s),
    }
    read_api.frames(ids[0], c=0, z=0, t=0)  # imports and the first open outside the timings
    reference.read(png_libpng, *selection(ids[0]))
    reference.read(png_pillow, *selection(ids[0]))
    reading.clear_cache()  # from here on, each dataset's first read finds nothing of it cached
    first = [selection(d) for d in rng.sample(ids, len(ids))]
    first_arms = {k: v for k, v in arms.items() if "read API" not in k}  # one cold project arm
    report(
        f"partial read, first read of each dataset in this process ({z_span} frames of "
        f"{height}x{width}: c, z {z_span}-run, t)",
        run_arms(first_arms, first, seed=1),
    )
    warm = [selection(rng.choice(ids)) for _ in range(args.repeats)]
    report(
        f"partial read, random selections ({z_span} frames of {height}x{width})",
        run_arms(arms, warm, seed=2),
    )

    # -- ablation: what each change bought ------------------------------------------------------
    plan = reading._open(lake.root, FRAMES, None).scanner(  # noqa: SLF001
        columns=reading.DIRECTORY_COLUMNS,
        filter=f"dataset_id = {quote(ids[0])}",
        with_row_address=True,
    )
    print("\nthe frame directory's query (once per dataset and table version):")
    print("  " + plan.explain_plan().strip().replace("\n", "\n  "))
    ablation = [selection(rng.choice(ids)) for _ in range(args.ablation)]
    for dataset_id, *_ in ablation:  # warm: each change's steady state
        reading.read_frames(lake.root, dataset_id, c=0, z=0, t=0)
    report(
        "ablation, warm (each row adds one change to the one above)",
        run_arms(
            {
                "before: tables opened afresh + dataset row + filtered scan": lambda *s: (
                    before_read(lake.root, *s)
                ),
                "+ one session, latest handle reused, no dataset row": lambda *s: session_scan_read(
                    lake.root, *s
                ),
                "+ frame directory per version, Lance take by address": lambda *s: (
                    directory_take_read(lake.root, *s)
                ),
                "+ pixels from the data file by offset (= read_frames)": project_read,
                "imagingDB design: indexed SQL + PNG (libpng)": arms[
                    "imagingDB design: indexed SQL + PNG (libpng)"
                ],
            },
            ablation,
            seed=3,
        ),
    )
    print(
        f"\nframes.lance {lance_bytes / 1e6:.1f} MB; PNGs "
        f"{dir_size(work / 'reference' / 'raw_frames') / 1e6:.1f} MB; raw "
        f"{total_frames * height * width * 2 / 1e6:.1f} MB; load average at end {load_average(' ')}"
    )


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


if __name__ == "__main__":
    main()
