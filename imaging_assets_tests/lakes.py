"""Writing a plate into a test lake the way the assets do: through core's partition-write protocol."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pyarrow as pa

from imaging_assets.core.lake import Lake
from imaging_assets.core.partition_write import PartitionWrite, write_partition
from imaging_assets.jump.datasets import partition_filter_for, plate_partition

__all__ = ["partition_filter_for", "write_plate"]


def write_plate(
    root: str | Path,
    dataset: str,
    partition_key: str,
    schema: pa.Schema,
    batches: Iterable[pa.RecordBatch],
    run_id: str = "test-run",
    **options,
) -> PartitionWrite:
    """Write one plate (`<source>__<plate>`) of `<root>/<dataset>.lance`; unlike the assets, a
    rewrite may drop rows unless `max_removed_fraction` says otherwise."""
    options.setdefault("max_removed_fraction", None)
    return write_partition(
        Lake.open(root),
        plate_partition(dataset, partition_key),
        schema,
        batches,
        run_id=run_id,
        **options,
    )
