"""Benchmark: specimen z-stacks into Lance (blob v2), and windowed reads back.

On a synthetic brightfield specimen (uncompressed uint16 TIFF slices, as the sample generator
writes them), with the code the zstack_slices asset runs (SliceStream -> replace_specimen):
  - ingest MB/s, wall and per CPU-second (one specimen at a time; Lance writes on its own
    threads), against the floor: tifffile decode only (read + decode, no hashing, no Lance);
  - peak RSS of a fresh process ingesting N and 4N slices, with MALLOC_ARENA_MAX=2 and with
    glibc's default arenas: flat in N is the requirement;
  - read time (median of --repeat) of one whole slice, a 512x512 window of one slice, and a
    512x512 window over 10 slices, from Lance (read_blob_ranges) against tifffile reading the
    same from the raw TIFFs (whole file: imread then index; memmap: tifffile.memmap).
Usage: python benchmarks/bench_stacks.py [--slices 16] [--size 2048] [--repeat 7] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import tifffile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_common import cpu_model  # noqa: E402

from imaging_assets.core.lake import Lake  # noqa: E402
from imaging_assets.core.partition_write import write_partition  # noqa: E402
from imaging_assets.core.stores import open_store  # noqa: E402
from imaging_assets.demo.gallery.stacks import SampleSpecimen, StackPreset, generate_stacks  # noqa: E402
from imaging_assets.stacks.datasets import SLICES, specimen_partition  # noqa: E402
from imaging_assets.stacks.layout import SLICE, LayoutRules  # noqa: E402
from imaging_assets.stacks.manifest import scan  # noqa: E402
from imaging_assets.stacks.reading import open_stack  # noqa: E402
from imaging_assets.stacks.slices import SLICES_SCHEMA, SliceStream  # noqa: E402


def ingest(collection: str, lake: str, specimen: str) -> dict:
    """What the zstack_slices asset does for one specimen; returns figures of this process."""
    store = open_store(collection)
    manifest = scan(store, LayoutRules()).manifest
    stream = SliceStream(
        store, specimen, "train", manifest.files_of(specimen, SLICE), run_id="bench"
    )
    cpu0, wall0 = time.process_time(), time.perf_counter()
    written = write_partition(
        Lake.open(lake),
        specimen_partition(SLICES, specimen),
        SLICES_SCHEMA,
        stream.batches(),
        run_id="bench",
        max_removed_fraction=None,
        max_rows_per_file=64,
    )
    return {
        "slices": written.rows,
        "bytes": stream.bytes_read,
        "wall_s": time.perf_counter() - wall0,
        "cpu_s": time.process_time() - cpu0,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def floor(paths: list[Path]) -> dict:
    """tifffile decode only: read each file's bytes and decode them."""
    cpu0, wall0, total = time.process_time(), time.perf_counter(), 0
    for path in paths:
        data = path.read_bytes()
        total += len(data)
        import io

        tifffile.imread(io.BytesIO(data))
    return {
        "bytes": total,
        "wall_s": time.perf_counter() - wall0,
        "cpu_s": time.process_time() - cpu0,
    }


def child(collection: str, lake: str, specimen: str, arena: str | None) -> dict:
    env = dict(os.environ)
    env.pop("MALLOC_ARENA_MAX", None)
    if arena:
        env["MALLOC_ARENA_MAX"] = arena
    out = subprocess.run(
        [sys.executable, __file__, "--child", collection, lake, specimen],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def median_ms(action, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--slices", type=int, default=16, help="N: slices of the small specimen")
    parser.add_argument("--size", type=int, default=2048, help="slice height and width")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--keep", type=Path, default=None, help="work folder to keep")
    parser.add_argument("--child", nargs=3, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(ingest(*args.child)))
        return

    work = args.keep or Path(tempfile.mkdtemp(prefix="bench_stacks_"))
    n, size = args.slices, args.size
    started = time.perf_counter()
    for name, slices in (("bench_n", n), ("bench_4n", 4 * n)):
        generate_stacks(
            work / "collection",
            StackPreset(slices, size, size, (SampleSpecimen(name, traced=False),)),
        )
    slice_mb = size * size * 2 / 1e6
    print(
        f"# bench_stacks: {n} and {4 * n} slices of {size}x{size} uint16 ({slice_mb:.1f} MB each)"
    )
    print(f"# {os.cpu_count()} CPUs ({cpu_model()}), Python {platform.python_version()}")
    print(f"# generated in {time.perf_counter() - started:.1f} s under {work}")
    collection = str(work / "collection")

    results = {}
    for arena in ("2", None):
        for name in ("bench_n", "bench_4n"):
            lake = work / f"lake_{arena or 'default'}"
            results[(arena, name)] = child(collection, str(lake), name, arena)
    paths = sorted((work / "collection" / "bench_4n").glob("*.tif"))
    floor_figures = floor(paths)

    print("\n## ingest (one specimen per process)")
    print("| variant | slices | MB | wall s | MB/s wall | MB/s per CPU-s | peak RSS MB |")
    print("|---|---|---|---|---|---|---|")
    for (arena, _name), r in results.items():
        mb = r["bytes"] / 1e6
        print(
            f"| ingest, MALLOC_ARENA_MAX={arena or 'unset'} | {r['slices']} | {mb:.0f} | "
            f"{r['wall_s']:.2f} | {mb / r['wall_s']:.0f} | {mb / r['cpu_s']:.0f} | {r['peak_rss_mb']:.0f} |"
        )
    mb = floor_figures["bytes"] / 1e6
    print(
        f"| floor: tifffile decode only | {len(paths)} | {mb:.0f} | {floor_figures['wall_s']:.2f} | "
        f"{mb / floor_figures['wall_s']:.0f} | {mb / max(floor_figures['cpu_s'], 1e-9):.0f} | - |"
    )

    lake = str(work / "lake_2")
    stack = open_stack(lake, "bench_4n")
    y, x = slice(size // 2 - 256, size // 2 + 256), slice(size // 3, size // 3 + 512)
    z0 = min(7, stack.shape[0] - 10)
    raw = [
        work / "collection" / "bench_4n" / f"bench_4n_bf-{z:04d}.tif" for z in range(stack.shape[0])
    ]
    checks = [
        np.array_equal(stack.window(z=z0, y=y, x=x), tifffile.imread(raw[z0])[y, x]),
        np.array_equal(
            stack.window(z=slice(z0, z0 + 10), y=y, x=x),
            np.stack([tifffile.memmap(p)[y, x] for p in raw[z0 : z0 + 10]]),
        ),
    ]
    reads = {
        "one slice": (
            lambda: stack.slice(z0),
            lambda: tifffile.imread(raw[z0]),
            lambda: np.array(tifffile.memmap(raw[z0])),
        ),
        "512x512 window": (
            lambda: stack.window(z=z0, y=y, x=x),
            lambda: tifffile.imread(raw[z0])[y, x],
            lambda: np.array(tifffile.memmap(raw[z0])[y, x]),
        ),
        "512x512 window x 10 slices": (
            lambda: stack.window(z=slice(z0, z0 + 10), y=y, x=x),
            lambda: np.stack([tifffile.imread(p)[y, x] for p in raw[z0 : z0 + 10]]),
            lambda: np.stack([np.array(tifffile.memmap(p)[y, x]) for p in raw[z0 : z0 + 10]]),
        ),
    }
    print(
        f"\n## reads (warm page cache, median of {args.repeat}, ms; windows equal raw: {all(checks)})"
    )
    print("| read | Lance blob v2 | tifffile whole file | tifffile memmap |")
    print("|---|---|---|---|")
    for label, (lance_read, whole, memmap) in reads.items():
        figures = [median_ms(f, args.repeat) for f in (lance_read, whole, memmap)]
        print(f"| {label} | {figures[0]:.1f} | {figures[1]:.1f} | {figures[2]:.1f} |")
    on_disk = sum(p.stat().st_size for p in (work / "lake_2").rglob("*") if p.is_file())
    raw_total = sum(p.stat().st_size for p in (work / "collection").rglob("*.tif"))
    print(f"\nlake on disk {on_disk / 1e6:.0f} MB for {raw_total / 1e6:.0f} MB of TIFFs")
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
