"""Benchmark: peak memory of one plate's site_images write, at 50, 600 and 3,456 sites.

Each size runs in a fresh process exactly as the site_images asset writes a plate: the sites are
fetched by a pool of `workers` threads, decoded, processed by robust_8bit_crop, hashed, encoded
(pzstd/1) and streamed through the partition-write protocol into a local lake (rows go into data
files as they come; the commit holds no rows). The raw images are synthetic 1080x1080 uint16 LZW
TIFFs (8 distinct sites, served round-robin, so generating them costs nothing per size).

The claim checked: peak RSS is bounded by configuration (workers x a site's images, the rows of
a data file, a fixed buffer), not by the number of sites. site_images writes at most
`rows_per_file` (512) sites per data file; the reference in the same run is one file per plate
(0). Figures of the former one-commit plate write (merge_insert, which held the whole plate):
+312 / +792 / +2,267 MB at 50 / 200 / 600 sites.

Usage: python benchmarks/bench_plate_memory.py [--sites 50,600,3456] [--workers 8]
       [--rows-per-file 512,0]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_common import cpu_model  # noqa: E402


def one_plate(sites: int, workers: int, lake: str, rows_per_file: int) -> dict:
    """In a fresh process: write one plate of `sites` sites; figures of this process."""
    import pyarrow as pa
    from bench_images import CHANNELS, synthetic_sites

    from imaging_assets.core.lake import Lake
    from imaging_assets.core.objects import FetchedObject
    from imaging_assets.core.partition_write import write_partition
    from imaging_assets.jump.datasets import SITE_IMAGES, plate_partition
    from imaging_assets.jump.images import process_sites, site_tasks_from_table
    from imaging_assets.jump.schemas import site_images_schema
    from imaging_assets.processing import get_recipe

    distinct = synthetic_sites(8)
    blobs, rows = {}, []
    for index in range(sites):
        for channel in CHANNELS:
            uri = f"mem://site{index}/{channel}.tiff"
            blobs[uri] = distinct[index % len(distinct)][channel]
            rows.append(
                {"source": "bench", "batch": "b", "plate": "P", "well": f"W{index // 9:04d}",
                 "site": str(index % 9), "channel": channel, "uri": uri, "illum_uri": None,
                 "site_key": f"bench__P__W{index // 9:04d}__{index % 9}"}
            )  # fmt: skip
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    tasks = site_tasks_from_table(pa.Table.from_pylist(rows), CHANNELS)
    result = process_sites(
        tasks,
        lambda uri: FetchedObject(uri, blobs[uri]),
        recipe=get_recipe("robust_8bit_crop"),
        channels=CHANNELS,
        workers=workers,
        run_id="bench",
    )
    started = time.perf_counter()
    written = write_partition(
        Lake.open(lake),
        plate_partition(SITE_IMAGES, "bench__P"),
        site_images_schema(CHANNELS),
        result.batches(),
        run_id="bench",
        max_rows_per_file=rows_per_file or None,
    )
    return {
        "sites": written.rows,
        "seconds": time.perf_counter() - started,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "before_mb": baseline,
        "stored_mb": written.bytes_staged / 1e6,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sites", default="50,600,3456")
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument(
        "--rows-per-file",
        default="512,0",
        help="site_images' rows_per_file (its default 512), and references (0: one file a plate)",
    )
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--lake", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_plate(args.one, args.workers, args.lake, int(args.rows_per_file))))
        return 0
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print(f"workers {args.workers}; synthetic 1080x1080 uint16 LZW sites x 5 channels")
    print(f"{'per file':>8} {'sites':>6} {'stored':>9} {'peak RSS':>9} {'added':>8} {'sites/s':>8}")
    arms = [
        (int(per_file), int(sites))
        for per_file in args.rows_per_file.split(",")
        for sites in args.sites.split(",")
    ]
    for per_file, sites in arms:
        with tempfile.TemporaryDirectory() as lake:
            env = {**os.environ, "MALLOC_ARENA_MAX": "2"}
            done = subprocess.run(
                [sys.executable, __file__, "--one", str(sites), "--workers", str(args.workers),
                 "--lake", lake, "--rows-per-file", str(per_file)],
                capture_output=True, text=True, env=env, cwd=Path(__file__).parent,
            )  # fmt: skip
            if done.returncode:
                print(done.stderr[-3000:], file=sys.stderr)
                return 1
            figures = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"{per_file or 'plate':>8} {figures['sites']:>6} {figures['stored_mb']:>7.0f}MB {figures['peak_mb']:>7.0f}MB "
            f"{figures['peak_mb'] - figures['before_mb']:>6.0f}MB "
            f"{figures['sites'] / figures['seconds']:>8.1f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
