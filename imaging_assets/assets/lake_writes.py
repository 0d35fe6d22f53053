"""How every per-plate asset writes its Lance dataset: one commit per plate, under a lease."""

from collections.abc import Iterable

import pyarrow as pa
from dagster import MetadataValue

from imaging_assets import lance_tables
from imaging_assets.keys import parse_plate_partition_key
from imaging_assets.partition_lock import partition_lease
from imaging_assets.resources.storage import LakeResource


def plate_filter(partition_key: str) -> str:
    source, plate = parse_plate_partition_key(partition_key)
    return lance_tables.partition_filter_for(source, plate)


def write_plate(
    lake: LakeResource,
    dataset: str,
    partition_key: str,
    run_id: str,
    batches: Iterable[pa.RecordBatch],
    schema: pa.Schema,
    *,
    key: str,
    evolve: bool = False,
    index_key: bool = False,
) -> lance_tables.CommitResult:
    """Replace the plate's rows of `<lake>/<dataset>.lance` with `batches` in one commit, then
    (with `index_key`) keep a BTREE index on the key for fast lookups by site or cell."""
    with partition_lease(lake.store(), dataset, partition_key, run_id):
        result = lance_tables.replace_partition(
            lake.dataset_uri(dataset),
            batches,
            schema,
            key=key,
            partition_filter=plate_filter(partition_key),
            storage_options=lake.storage_options(),
            properties={"dagster_run_id": run_id, "partition": partition_key},
            evolve=evolve,
        )
    if index_key:
        lance_tables.ensure_key_index(lake.dataset_uri(dataset), key, lake.storage_options())
    return result


def commit_metadata(
    uri: str, commit: lance_tables.CommitResult, rows: int, seconds: float, unit: str
) -> dict:
    """What every Lance-writing asset reports: where, which version, how many, how fast."""
    return {
        "dataset_uri": MetadataValue.path(uri),
        "dataset_version": commit.version,
        "rows": rows,
        f"{unit}_per_second": round(rows / seconds, 1) if seconds > 0 else 0.0,
    }
