"""Verify specimens: re-read each slice's raw object where it was read and re-hash the pixel bytes
stored in the lake, against the size, md5 and sha256 recorded at ingest."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import numpy as np

from imaging_assets.core.errors import MissingObjectError
from imaging_assets.core.lake import Lake
from imaging_assets.core.lance_tables import open_dataset
from imaging_assets.core.partition_write import read_record
from imaging_assets.core.stores import ObjectStore, StoreUnavailableError
from imaging_assets.core.verify import Mismatch, VerifyReport, digests, spread_sample
from imaging_assets.stacks.datasets import SLICES, specimen_filter
from imaging_assets.stacks.reading import open_stack

RAW = "raw slices"
STORED = "stored slices"


def known_specimens(lake: Lake) -> list[str]:
    dataset = open_dataset(lake.uri(SLICES), lake.storage_options)
    if dataset is None:
        return []
    return sorted(set(dataset.to_table(columns=["specimen"])["specimen"].to_pylist()))


def verify_specimens(
    lake: Lake,
    collection: ObjectStore,
    specimens: Sequence[str] | None = None,
    sample: int | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> VerifyReport:
    """Every specimen (or `specimens`), every slice (or `sample` slices, spread over z)."""
    report = VerifyReport()
    held = known_specimens(lake)
    wanted = list(specimens) if specimens else held
    report.unknown += [s for s in wanted if s not in held and read_record(lake, SLICES, s) is None]
    done = 0
    for specimen in (s for s in wanted if s in held):
        stack = open_stack(lake.root, specimen, lake.storage_options)
        positions = {z: i for i, z in enumerate(stack.z)}
        rows = {row["z"]: row for row in _rows(lake, specimen)}
        for key in spread_sample([f"{z:08d}" for z in rows], sample):
            row = rows[int(key)]
            _check_raw(report, collection, specimen, row)
            if row.get("pixels_sha256"):  # rows written before stored digests existed: raw only
                _check_stored(report, specimen, row, stack.slice(positions[row["z"]]))
            done += 1
            if progress:
                progress(done, None)
    return report


def _rows(lake: Lake, specimen: str) -> list[dict]:
    """The specimen's slice rows with the provenance columns this dataset has."""
    dataset = open_dataset(lake.uri(SLICES), lake.storage_options)
    wanted = ("z", "raw_uri", "read_uri", "raw_size", "raw_md5", "raw_sha256", "pixels_sha256")
    columns = [c for c in wanted if c in dataset.schema.names]
    return dataset.to_table(columns=columns, filter=specimen_filter(specimen)).to_pylist()


def _check_stored(report: VerifyReport, specimen: str, row: dict, pixels: np.ndarray) -> None:
    report.checked[STORED] += 1
    little = np.ascontiguousarray(pixels.astype(pixels.dtype.newbyteorder("<"), copy=False))
    actual = hashlib.sha256(little).hexdigest()
    if actual != row["pixels_sha256"]:
        report.mismatches.append(
            Mismatch(specimen, "stored slice", f"z={row['z']}", row["pixels_sha256"], actual)
        )


def _check_raw(report: VerifyReport, collection: ObjectStore, specimen: str, row: dict) -> None:
    where = row.get("read_uri") or row["raw_uri"]
    report.checked[RAW] += 1
    try:
        data = collection.read(where).data
    except (MissingObjectError, StoreUnavailableError, OSError) as error:
        report.mismatches.append(Mismatch(specimen, "raw slice", where, None, None, str(error)))
        return
    md5, sha256 = digests(data)
    if (len(data), md5, sha256) != (row["raw_size"], row["raw_md5"], row["raw_sha256"]):
        report.mismatches.append(
            Mismatch(
                specimen,
                "raw slice",
                where,
                f"sha256 {row['raw_sha256']}",
                f"sha256 {sha256}",
                f"{len(data)} bytes, recorded {row['raw_size']}",
            )
        )
