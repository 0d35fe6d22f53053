"""How every Lance-writing asset writes its partition: core's one protocol, with the run's id,
the instance's view of which runs are alive, and the metadata every write reports."""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa
from dagster import AssetExecutionContext, Config, DagsterInstance, MetadataValue
from pydantic import Field

from imaging_assets.core.lease import RunAlive
from imaging_assets.core.partition_write import Partition, PartitionWrite, write_partition
from imaging_assets.defs.common.catalog import table_catalog
from imaging_assets.defs.common.stores import LakeResource


class RerunGuardConfig(Config):
    """What a re-run of a partition (plate, specimen, dataset) may remove of what an earlier run
    wrote."""

    max_removed_fraction: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description=(
            "Share of the partition's existing rows that a re-run may delete without writing "
            "them again (0: none, the default; 1: any). A refusal names what would be removed."
        ),
    )


def run_alive_in(instance: DagsterInstance) -> RunAlive:
    """Whether a run is still in progress, as this instance knows it (None: another instance)."""

    def alive(run_id: str) -> bool | None:
        run = instance.get_run_by_id(run_id)
        return None if run is None else not run.is_finished

    return alive


def write(
    context: AssetExecutionContext,
    lake: LakeResource,
    partition: Partition,
    schema: pa.Schema,
    batches: Iterable[pa.RecordBatch],
    **options,
) -> PartitionWrite:
    """Write the partition through core's protocol as this run (see core/partition_write.py)."""
    return write_partition(
        lake.handle(),
        partition,
        schema,
        batches,
        run_id=context.run.run_id,
        run_alive=run_alive_in(context.instance),
        **options,
    )


def write_metadata(
    written: PartitionWrite, schema: pa.Schema, seconds: float | None = None, unit: str = "rows"
) -> dict:
    """What every Lance-writing asset reports: where, which version, whether anything changed,
    how many rows (the partition's, as Dagster's row count; the dataset's total beside it), how
    fast, and the columns."""
    seconds = written.seconds if seconds is None else seconds
    return {
        **table_catalog(schema, written.rows),
        "outcome": written.outcome,
        "dataset_uri": MetadataValue.path(written.uri),
        "dataset_version": written.version,
        "dataset_rows_total": written.total_rows,
        "rows": written.rows,
        "rows_removed": written.rows_removed,
        "bytes_written": written.bytes_staged,
        "commit_attempts": written.commit_attempts,
        f"{unit}_per_second": round(written.rows / seconds, 1) if seconds > 0 else 0.0,
    }
