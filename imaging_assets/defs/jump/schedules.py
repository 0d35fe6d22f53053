"""Schedule `plate_backfill_schedule`: runs plates whose images are missing or stale, a few per tick.

A plate is stale when its latest site_images materialization has another code version than the
current definition (the code version changes with any recipe version), so bumping a recipe
reprocesses every plate at the pace the run queue and its concurrency limits allow.
"""

import os

from dagster import (
    AssetKey,
    DagsterRunStatus,
    DefaultScheduleStatus,
    RunRequest,
    RunsFilter,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from imaging_assets.defs.jump.images import recipes_code_version
from imaging_assets.defs.jump.jobs import plate_job
from imaging_assets.defs.jump.partitions import PLATES_PARTITIONS_NAME
from imaging_assets.jump.backfill import plates_to_run
from imaging_assets.jump.datasets import SITE_IMAGES
from imaging_assets.jump.keys import parse_plate_partition_key

MAX_RUNS_PER_TICK = int(os.environ.get("IMAGING_ASSETS_BACKFILL_MAX_RUNS", "20"))
PAGE = 1000
IN_FLIGHT = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
]


def latest_code_versions(instance, asset_key: AssetKey) -> dict[str, str | None]:
    """Code version of the latest materialization of each partition (newest events first)."""
    versions: dict[str, str | None] = {}
    cursor = None
    while True:
        page = instance.fetch_materializations(asset_key, limit=PAGE, cursor=cursor)
        for record in page.records:
            materialization = record.asset_materialization
            if materialization is None or materialization.partition is None:
                continue
            versions.setdefault(
                materialization.partition, (materialization.tags or {}).get("dagster/code_version")
            )
        if not page.has_more:
            return versions
        cursor = page.cursor


def partitions_in_flight(instance) -> set[str]:
    runs = instance.get_runs(filters=RunsFilter(job_name=plate_job.name, statuses=IN_FLIGHT))
    return {run.tags.get("dagster/partition") for run in runs} - {None}


@schedule(
    job=plate_job,
    cron_schedule="0 * * * *",
    default_status=DefaultScheduleStatus.STOPPED,
    description=(
        "Every hour: plate_job runs for plates whose site_images are missing or stale, at most "
        "IMAGING_ASSETS_BACKFILL_MAX_RUNS per tick, skipping plates with a run in flight."
    ),
)
def plate_backfill_schedule(context: ScheduleEvaluationContext):
    instance = context.instance
    chosen, counts = plates_to_run(
        instance.get_dynamic_partitions(PLATES_PARTITIONS_NAME),
        latest_code_versions(instance, AssetKey(SITE_IMAGES)),
        recipes_code_version(),
        partitions_in_flight(instance),
        MAX_RUNS_PER_TICK,
    )
    context.log.info(f"plates: {counts}; requesting {len(chosen)}")
    if not chosen:
        return SkipReason(f"nothing missing or stale: {counts}")
    tick = context.scheduled_execution_time.isoformat() if context.scheduled_execution_time else ""
    return [
        RunRequest(
            run_key=f"{key}@{tick}",
            partition_key=key,
            tags={"imaging_assets/source": parse_plate_partition_key(key)[0]},
        )
        for key in chosen
    ]
