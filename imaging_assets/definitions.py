"""The code location: every asset, job, sensor and schedule, with their resources."""

from dagster import Definitions

from imaging_assets.defs.common.resources import default_resources
from imaging_assets.defs.frames.assets import FRAMES_ASSETS, FRAMES_JOBS, FRAMES_SENSORS
from imaging_assets.defs.jump.assets import ALL_ASSETS
from imaging_assets.defs.jump.jobs import images_job, metadata_job, plate_job
from imaging_assets.defs.jump.schedules import plate_backfill_schedule
from imaging_assets.defs.jump.sensors import new_plates_sensor
from imaging_assets.defs.stacks.assets import (
    STACKS_ASSETS,
    STACKS_JOBS,
    STACKS_RESOURCES,
    STACKS_SENSORS,
)

defs = Definitions(
    assets=ALL_ASSETS + STACKS_ASSETS + FRAMES_ASSETS,
    jobs=[metadata_job, plate_job, images_job] + STACKS_JOBS + FRAMES_JOBS,
    sensors=[new_plates_sensor] + STACKS_SENSORS + FRAMES_SENSORS,
    schedules=[plate_backfill_schedule],
    resources={**default_resources(), **STACKS_RESOURCES},
)
