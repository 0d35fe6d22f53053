"""The code location of bench_backfill.py: cheap assets over the project's `plates` partitions.

Each run is a real Dagster run (queued, launched by the daemon, its own process, events in the
instance, compute logs captured) that does almost nothing, so the benchmark measures what the
deployment adds per plate: backfill submission, the run queue and the per-run start cost.
"""

from dagster import (
    AssetExecutionContext,
    BackfillPolicy,
    Definitions,
    MaterializeResult,
    asset,
    define_asset_job,
)

from imaging_assets.defs.common.batches import partition_batch_job
from imaging_assets.defs.jump.partitions import plates_partitions


@asset(partitions_def=plates_partitions, group_name="bench")
def plate_marker(context: AssetExecutionContext) -> MaterializeResult:
    """One run per plate (what a plate_job backfill does)."""
    print(f"plate {context.partition_key}")
    return MaterializeResult(metadata={"plate": context.partition_key})


@asset(
    partitions_def=plates_partitions,
    group_name="bench",
    backfill_policy=BackfillPolicy.single_run(),
)
def plate_marker_single_run(context: AssetExecutionContext) -> MaterializeResult:
    """Every plate of a backfill in one run (BackfillPolicy.single_run)."""
    keys = context.partition_keys
    print(f"{len(keys)} plates in one run")
    return MaterializeResult(metadata={"plates": len(keys)})


plate_marker_job = define_asset_job(
    "plate_marker_job", selection=[plate_marker], partitions_def=plates_partitions
)

# the project's batch runs (defs/common/batches.py, as plate_batch_job) over the cheap plate job
plate_marker_batch_job = partition_batch_job(
    name="plate_marker_batch_job",
    job_name=plate_marker_job.name,
    description="plate_marker_job for each listed plate, one child run each.",
)

defs = Definitions(
    assets=[plate_marker, plate_marker_single_run],
    jobs=[plate_marker_job, plate_marker_batch_job],
)
