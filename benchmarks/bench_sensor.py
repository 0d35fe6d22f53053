"""Benchmark: what a tick of new_plates_sensor costs on S3, against a full listing of the source.

Builds a source of PLATES plates in BATCHES batches (keys only, tiny objects) on a real SeaweedFS
server on loopback, then measures, in one run:
  (a) this sensor's scan (delimiter listings, cursor): first tick, an idle tick, a tick with 10
      new plates in a new batch;
  (b) the reference: one recursive listing of every load_data key (what a naive sensor does each
      tick), for the same three situations.
Prints wall time and S3 requests for each. Usage: python benchmarks/bench_sensor.py [--plates N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from imaging_assets.core.s3 import S3Settings  # noqa: E402
from imaging_assets.core.stores import S3Store  # noqa: E402
from imaging_assets.jump import layout  # noqa: E402
from imaging_assets.jump.discovery import ScanCursor, scan_for_new_plates  # noqa: E402
from imaging_assets_tests.servers import S3Server  # noqa: E402

BUCKET = "bench-sensor"
SOURCES = 13


def plate_keys(plates: int, batches: int, first_batch: int = 0) -> list[str]:
    keys = []
    for n in range(plates):
        batch = first_batch + n % batches
        source = f"source_{batch % SOURCES + 1}"
        keys.append(layout.load_data_csv_key(source, f"batch_{batch:04}", f"PLATE{n:06}_{batch}"))
    return keys


def image_keys(plates: int, batches: int, per_plate: int) -> list[str]:
    """A few raw-image keys per plate, so the source looks like a source, not an index."""
    keys = []
    for key in plate_keys(plates, batches):
        source, _, _, batch, plate, _ = key.split("/")
        for n in range(per_plate):
            keys.append(
                f"{layout.images_prefix(source, batch)}{plate}__M1/Images/r01c01f{n:02d}p01-ch1.tiff"
            )
    return keys


def upload(client, keys: list[str]) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda key: client.put_object(Bucket=BUCKET, Key=key, Body=b"x"), keys))
    return time.perf_counter() - started


def reference_scan(store: S3Store, known: set[str]) -> list[str]:
    """A naive sensor: list every key under the root, keep load_data files of unknown plates."""
    new = []
    for key in store.list_keys(""):
        if f"/{layout.LOAD_DATA_DIR}/" in key and key.endswith(layout.LOAD_DATA_WITH_ILLUM_FILE):
            parts = key.split("/")
            partition = f"{parts[0]}__{parts[-2]}"
            if partition not in known:
                new.append(partition)
    return new


def measure(label: str, action, store: S3Store) -> tuple[float, int, int]:
    before = store.request_count
    started = time.perf_counter()
    found = action()
    seconds = time.perf_counter() - started
    requests = store.request_count - before
    print(f"  {label:<42} {seconds * 1000:9.1f} ms {requests:7d} requests {len(found):6d} new")
    return seconds, requests, len(found)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--plates", type=int, default=2500)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--images-per-plate", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, S3Server(Path(tmp)) as server:
        server.make_bucket(BUCKET)
        client = server.boto3_client()
        keys = plate_keys(args.plates, args.batches)
        keys += image_keys(args.plates, args.batches, args.images_per_plate)
        seconds = upload(client, keys)
        print(
            f"source: {args.plates} plates in {args.batches} batches, {len(keys):,} keys "
            f"({args.images_per_plate} image keys a plate), uploaded in {seconds:.1f} s"
        )
        os.environ.update(server.env())  # credentials the way users pass them
        settings = S3Settings(endpoint_url=server.endpoint_url, region=server.region)
        store = S3Store(f"s3://{BUCKET}", settings)

        known_sensor: set[str] = set()
        known_reference: set[str] = set()
        cursor = ScanCursor()

        def sensor_tick():
            nonlocal cursor
            found, cursor = scan_for_new_plates(
                store, cursor, known_sensor, max_new=args.plates + 100
            )
            known_sensor.update(p.partition_key for p in found)
            return found

        def reference_tick():
            found = reference_scan(store, known_reference)
            known_reference.update(found)
            return found

        print("first tick (everything is new):")
        measure("(a) sensor scan", sensor_tick, store)
        measure("(b) reference: full listing", reference_tick, store)
        for _ in range(3):  # let the first tick's batches settle
            sensor_tick()
        print("idle tick (nothing new):")
        measure("(a) sensor scan", sensor_tick, store)
        measure("(b) reference: full listing", reference_tick, store)
        upload(client, plate_keys(10, 1, first_batch=args.batches + 1))
        print("tick with 10 new plates in a new batch:")
        _, sensor_requests, sensor_found = measure("(a) sensor scan", sensor_tick, store)
        _, reference_requests, reference_found = measure(
            "(b) reference: full listing", reference_tick, store
        )
        assert sensor_found == reference_found == 10, (sensor_found, reference_found)
        print(
            f"verdict: a tick with 10 new plates costs {sensor_requests} requests "
            f"(reference {reference_requests}); the sensor's cost does not depend on the number of "
            "images, the reference's does: at JUMP scale (~60M raw objects) a full listing is "
            "~60,000 requests per tick"
        )


if __name__ == "__main__":
    main()
