"""Schedules that run plates whose images are missing or stale, a few per tick: one run per plate
(`plate_backfill_schedule`), or many plates per run (`plate_batch_backfill_schedule`, for
collections of thousands of plates: see defs/common/batches.py).

A plate is stale when its latest site_images materialization has another code version than the
current definition (the code version changes with any recipe version), so bumping a recipe
reprocesses every plate at the pace the run queue and its concurrency limits allow. Plates whose
runs keep failing are retried after a back-off that doubles with each failure, after new and
stale plates (jump/backfill.py), and listed with their last error in the tick's log and by
`imaging-assets plates attention`.
"""

import os
import time

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

from imaging_assets.defs.common.batches import batch_run_config, listed_partitions
from imaging_assets.defs.common.batches import partitions_in_flight as batch_partitions_in_flight
from imaging_assets.defs.common.runs import IN_FLIGHT, first_error
from imaging_assets.defs.jump.images import recipes_code_version
from imaging_assets.defs.jump.jobs import plate_batch_job, plate_job
from imaging_assets.defs.jump.partitions import PLATES_PARTITIONS_NAME
from imaging_assets.jump.backfill import (
    PlateHistory,
    needing_attention,
    plate_batches,
    plates_to_run,
    source_of,
)
from imaging_assets.jump.datasets import SITE_IMAGES

MAX_RUNS_PER_TICK = int(os.environ.get("IMAGING_ASSETS_BACKFILL_MAX_RUNS", "20"))
PLATES_PER_RUN = int(os.environ.get("IMAGING_ASSETS_PLATES_PER_RUN", "25"))
HISTORY_RUNS = 5000  # newest finished plate runs read per tick for failure histories
ATTENTION_LOGGED = 50
PAGE = 1000


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


def plate_histories(instance, limit: int = HISTORY_RUNS) -> dict[str, PlateHistory]:
    """Failures since the last success of each plate, from the newest finished plate runs (with
    the last failure's time and the first line of its error)."""
    records = instance.get_run_records(
        filters=RunsFilter(
            job_name=plate_job.name,
            statuses=[DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE],
        ),
        limit=limit,
    )  # newest first
    failures: dict[str, list] = {}
    settled: set[str] = set()
    for record in records:
        key = record.dagster_run.tags.get("dagster/partition")
        if key is None or key in settled:
            continue
        if record.dagster_run.status == DagsterRunStatus.SUCCESS:
            settled.add(key)
        else:
            failures.setdefault(key, []).append(record)
    histories = {}
    for key, failed in failures.items():
        newest = failed[0]
        ended = newest.end_time or newest.update_timestamp.timestamp()
        histories[key] = PlateHistory(
            len(failed), ended, first_error(instance, newest.dagster_run.run_id)
        )
    return histories


def partitions_in_flight(instance) -> set[str]:
    """Plates with a plate run in flight, or listed by a batch run in flight (queued ones too)."""
    keys = batch_partitions_in_flight(instance, plate_job.name)
    batches = instance.get_runs(
        filters=RunsFilter(job_name=plate_batch_job.name, statuses=IN_FLIGHT)
    )
    return keys.union(*(listed_partitions(run) for run in batches))


def plates_due(instance, limit: int, now: float) -> tuple[list[str], dict, dict]:
    """At most `limit` plates to run now: missing, then stale, then failing ones whose back-off
    is over, none in flight. Returns them, the counts per state and the failure histories."""
    histories = plate_histories(instance)
    chosen, counts = plates_to_run(
        instance.get_dynamic_partitions(PLATES_PARTITIONS_NAME),
        latest_code_versions(instance, AssetKey(SITE_IMAGES)),
        recipes_code_version(),
        partitions_in_flight(instance),
        limit,
        histories,
        now,
    )
    return chosen, counts, histories


def choose_plates(context: ScheduleEvaluationContext, limit: int) -> tuple[list[str], dict]:
    """plates_due at the tick's time; logs the plates that need attention."""
    now = (
        context.scheduled_execution_time.timestamp()
        if context.scheduled_execution_time
        else time.time()
    )
    chosen, counts, histories = plates_due(context.instance, limit, now)
    context.log.info(f"plates: {counts}; requesting {len(chosen)}")
    for key, past in needing_attention(histories)[:ATTENTION_LOGGED]:
        context.log.warning(
            f"needs attention: {key} failed {past.consecutive_failures} times in a row; "
            f"last error: {past.last_error}"
        )
    return chosen, counts


def _tick(context: ScheduleEvaluationContext) -> str:
    return context.scheduled_execution_time.isoformat() if context.scheduled_execution_time else ""


@schedule(
    job=plate_job,
    cron_schedule="0 * * * *",
    default_status=DefaultScheduleStatus.STOPPED,
    description=(
        "Every hour: plate_job runs for plates whose site_images are missing or stale, then for "
        "failing plates whose back-off (1 h, doubling, at most 7 days) is over; at most "
        "IMAGING_ASSETS_BACKFILL_MAX_RUNS per tick, skipping plates with a run in flight. Plates "
        "that failed twice or more are logged with their last error."
    ),
)
def plate_backfill_schedule(context: ScheduleEvaluationContext):
    chosen, counts = choose_plates(context, MAX_RUNS_PER_TICK)
    if not chosen:
        return SkipReason(f"nothing missing or stale: {counts}")
    return [
        RunRequest(
            run_key=f"{key}@{_tick(context)}",
            partition_key=key,
            tags={"imaging_assets/source": source_of(key)},
        )
        for key in chosen
    ]


@schedule(
    job=plate_batch_job,
    cron_schedule="0 * * * *",
    default_status=DefaultScheduleStatus.STOPPED,
    description=(
        "plate_backfill_schedule for thousands of plates: the same plates, in the same order, in "
        "plate_batch_job runs of at most IMAGING_ASSETS_PLATES_PER_RUN plates of one source "
        "(a run per plate inside each), at most IMAGING_ASSETS_BACKFILL_MAX_RUNS batch runs per "
        "tick. Turn on one of the two."
    ),
)
def plate_batch_backfill_schedule(context: ScheduleEvaluationContext):
    chosen, counts = choose_plates(context, MAX_RUNS_PER_TICK * PLATES_PER_RUN)
    if not chosen:
        return SkipReason(f"nothing missing or stale: {counts}")
    batches = plate_batches(chosen, PLATES_PER_RUN)[:MAX_RUNS_PER_TICK]
    return [
        RunRequest(
            run_key=f"{batch[0]}+{len(batch) - 1}@{_tick(context)}",
            run_config=batch_run_config(batch),
            tags={"imaging_assets/source": source_of(batch[0])},
        )
        for batch in batches
    ]
