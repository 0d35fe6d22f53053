"""`new_specimens_sensor`: new specimen folders become partitions and stacks_job runs."""

import json
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

from imaging_assets.defs.stacks.jobs import stacks_job
from imaging_assets.defs.stacks.partitions import SPECIMENS_PARTITIONS_NAME
from imaging_assets.defs.stacks.resources import StackCollectionResource
from imaging_assets.stacks.manifest import specimen_folders

MAX_NEW_SPECIMENS_PER_TICK = int(os.environ.get("IMAGING_ASSETS_SENSOR_MAX_SPECIMENS", "20"))


@sensor(
    job=stacks_job,
    minimum_interval_seconds=300,
    default_status=DefaultSensorStatus.STOPPED,
    description=(
        "Lists the collection's specimen folders by delimiter (no recursive listing), registers "
        "new specimens as partitions and requests a stacks_job run for each (at most "
        "IMAGING_ASSETS_SENSOR_MAX_SPECIMENS per tick; the rest on later ticks)."
    ),
)
def new_specimens_sensor(
    context: SensorEvaluationContext, stack_collection: StackCollectionResource
):
    store = stack_collection.store()
    before = store.request_count
    known = set(context.instance.get_dynamic_partitions(SPECIMENS_PARTITIONS_NAME))
    folders = specimen_folders(store, stack_collection.rules())
    unseen = [f for f in folders if f.specimen not in known]
    chosen = unseen[:MAX_NEW_SPECIMENS_PER_TICK]
    requests = store.request_count - before
    previous = json.loads(context.cursor) if context.cursor else {}
    cursor = json.dumps(
        {
            "ticks": int(previous.get("ticks", 0)) + 1,
            "folders_seen": len(folders),
            "pending": len(unseen) - len(chosen),
            "last_requests": requests,
        }
    )
    context.log.info(
        f"{len(folders)} specimen folders in {requests} listing requests; {len(unseen)} new, "
        f"{len(chosen)} requested now"
    )
    if not chosen:
        context.update_cursor(cursor)
        return SkipReason(f"no new specimens ({requests} listing requests)")
    keys = [f.specimen for f in chosen]
    return SensorResult(
        run_requests=[
            RunRequest(
                run_key=f"specimen:{key}",
                partition_key=key,
                tags={"imaging_assets/collection": stack_collection.name},
            )
            for key in keys
        ],
        dynamic_partitions_requests=[
            AddDynamicPartitionsRequest(SPECIMENS_PARTITIONS_NAME, partition_keys=keys)
        ],
        cursor=cursor,
    )
