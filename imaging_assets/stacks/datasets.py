"""The Lance datasets of specimen collections: names, row keys, how one specimen's rows are
selected, and the queryable record of slices that could not be used."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import pyarrow as pa

from imaging_assets.core.lance_tables import quote
from imaging_assets.core.partition_write import Partition
from imaging_assets.core.provenance import DERIVED, FAILURES, RAW
from imaging_assets.stacks.slices import SliceFailure, slice_key

SLICES = "zstack_slices"
PROJECTIONS = "zstack_projections"
SKELETONS = "skeletons"
SLICE_FAILURES = "zstack_slice_failures"

TABLES = {  # the kind of each table (core/provenance.py): what provenance its rows carry
    SLICES: RAW,
    PROJECTIONS: DERIVED,
    SKELETONS: RAW,
    SLICE_FAILURES: FAILURES,
}

ROW_KEYS = {
    SLICES: "slice_key",
    PROJECTIONS: "specimen",
    SKELETONS: "node_key",
    SLICE_FAILURES: "failure_key",
}

SLICE_FAILURES_SCHEMA = pa.schema(
    [
        pa.field("failure_key", pa.string()),
        pa.field("specimen", pa.string()),
        pa.field("z", pa.int32()),
        pa.field("kind", pa.string()),
        pa.field("detail", pa.string()),
        pa.field("raw_uri", pa.string()),
        pa.field("read_uri", pa.string()),
        pa.field("package_version", pa.string()),
        pa.field("dagster_run_id", pa.string()),
        pa.field("written_at", pa.timestamp("us", tz="UTC")),
    ]
)


def specimen_filter(specimen: str) -> str:
    return f"specimen = {quote(specimen)}"


def specimen_partition(dataset: str, specimen: str) -> Partition:
    """One specimen of one of the stack datasets, as the partition-write protocol takes it."""
    return Partition(dataset, specimen, specimen_filter(specimen), ROW_KEYS[dataset], "specimen")


def slice_failures_table(
    failures: Iterable[SliceFailure],
    raw_uri_of,
    package_version: str,
    run_id: str,
) -> pa.Table:
    """One row per failed slice (kind and z, like failed_images for plates); `raw_uri_of(key)`
    turns a collection key into the URI recorded."""
    rows, seen = [], {}
    written_at = dt.datetime.now(dt.UTC)
    for failure in sorted(failures, key=lambda f: (f.z, f.kind, f.key or "")):
        base = f"{slice_key(failure.specimen, failure.z)}__{failure.kind}"
        seen[base] = seen.get(base, 0) + 1
        rows.append(
            {
                "failure_key": f"{base}__{seen[base]}",
                "specimen": failure.specimen,
                "z": failure.z,
                "kind": failure.kind,
                "detail": failure.detail,
                "raw_uri": raw_uri_of(failure.key) if failure.key else None,
                "read_uri": raw_uri_of(failure.key) if failure.key else None,
                "package_version": package_version,
                "dagster_run_id": run_id,
                "written_at": written_at,
            }
        )
    return pa.Table.from_pylist(rows, schema=SLICE_FAILURES_SCHEMA)


FAILURES_SCHEMA = SLICE_FAILURES_SCHEMA
