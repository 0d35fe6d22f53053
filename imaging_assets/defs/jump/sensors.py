"""Sensor `new_plates_sensor`: finds new batches and plates in the source and runs them.

Each tick lists only what can be new (see discovery.scan_for_new_plates), adds the new plates as
partitions of `plates` and requests one plate_job run per plate, in one SensorResult. Runs carry a
run_key equal to the partition key, so a daemon restart that repeats a tick launches nothing twice;
the cursor and the instance's partitions make a restart lose nothing.
"""

import os

from dagster import (
    AddDynamicPartitionsRequest,
    DefaultSensorStatus,
    RunRequest,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from imaging_assets.defs.common.stores import SourceResource
from imaging_assets.defs.jump.jobs import plate_job
from imaging_assets.defs.jump.partitions import PLATES_PARTITIONS_NAME
from imaging_assets.jump.discovery import ScanCursor, scan_for_new_plates
from imaging_assets.jump.plates import BATCH_TAG

MAX_NEW_PLATES_PER_TICK = int(os.environ.get("IMAGING_ASSETS_SENSOR_MAX_PLATES", "50"))
FULL_SCAN_EVERY_TICKS = 100


def plate_run_tags(source: str, batch: str) -> dict[str, str]:
    """Tags of a plate run: the source tag drives the per-source run concurrency limit."""
    return {"imaging_assets/source": source, BATCH_TAG: batch}


@sensor(
    job=plate_job,
    minimum_interval_seconds=300,
    default_status=DefaultSensorStatus.STOPPED,
    description=(
        "Lists each source's load_data folders by delimiter, registers new plates as partitions "
        "and requests a plate_job run for each (at most IMAGING_ASSETS_SENSOR_MAX_PLATES per tick)."
    ),
)
def new_plates_sensor(context: SensorEvaluationContext, source: SourceResource):
    store = source.store()
    before = store.request_count
    known = set(context.instance.get_dynamic_partitions(PLATES_PARTITIONS_NAME))
    found, cursor = scan_for_new_plates(
        store,
        ScanCursor.from_json(context.cursor),
        known,
        max_new=MAX_NEW_PLATES_PER_TICK,
        full_scan_every=FULL_SCAN_EVERY_TICKS,
    )
    requests = store.request_count - before
    context.log.info(
        f"{len(found)} new plates in {requests} listing requests; "
        f"{len(cursor.watched)} batches still watched"
    )
    if not found:
        context.update_cursor(cursor.to_json())
        return SkipReason(f"no new plates ({requests} listing requests)")
    keys = [plate.partition_key for plate in found]
    return SensorResult(
        run_requests=[
            RunRequest(
                run_key=plate.partition_key,
                partition_key=plate.partition_key,
                tags=plate_run_tags(plate.source, plate.batch),
            )
            for plate in found
        ],
        dynamic_partitions_requests=[
            AddDynamicPartitionsRequest(PLATES_PARTITIONS_NAME, partition_keys=keys)
        ],
        cursor=cursor.to_json(),
    )
