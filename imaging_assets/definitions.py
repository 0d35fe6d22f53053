"""The code location: every asset, job, sensor and schedule, with their resources."""

from dagster import Definitions

from imaging_assets.assets import ALL_ASSETS
from imaging_assets.assets.frames import FRAMES_ASSETS, FRAMES_JOBS, FRAMES_SENSORS
from imaging_assets.assets.stacks import (
    STACKS_ASSETS,
    STACKS_JOBS,
    STACKS_RESOURCES,
    STACKS_SENSORS,
)
from imaging_assets.jobs import images_job, metadata_job, plate_job
from imaging_assets.resources import default_resources
from imaging_assets.schedules import plate_backfill_schedule
from imaging_assets.sensors import new_plates_sensor

defs = Definitions(
    assets=ALL_ASSETS + STACKS_ASSETS + FRAMES_ASSETS,
    jobs=[metadata_job, plate_job, images_job] + STACKS_JOBS + FRAMES_JOBS,
    sensors=[new_plates_sensor] + STACKS_SENSORS + FRAMES_SENSORS,
    schedules=[plate_backfill_schedule],
    resources={**default_resources(), **STACKS_RESOURCES},
)
