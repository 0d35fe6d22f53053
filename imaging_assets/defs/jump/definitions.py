"""The jump wing: JUMP metadata tables, then per plate load_data, sampling, images, profiles."""

from dagster import Definitions

from imaging_assets.defs.jump.assets import ALL_ASSETS
from imaging_assets.defs.jump.jobs import images_job, metadata_job, plate_batch_job, plate_job
from imaging_assets.defs.jump.schedules import (
    plate_backfill_schedule,
    plate_batch_backfill_schedule,
)
from imaging_assets.defs.jump.sensors import new_plates_sensor

defs = Definitions(
    assets=ALL_ASSETS,
    jobs=[metadata_job, plate_job, images_job, plate_batch_job],
    sensors=[new_plates_sensor],
    schedules=[plate_backfill_schedule, plate_batch_backfill_schedule],
)
