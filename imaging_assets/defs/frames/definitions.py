"""The frames wing: identified multi-dimensional acquisitions, one partition per dataset."""

from dagster import Definitions

from imaging_assets.defs.frames.assets import FRAMES_ASSETS
from imaging_assets.defs.frames.jobs import frames_job, imaging_datasets_job
from imaging_assets.defs.frames.sensors import frames_manifest_sensor

defs = Definitions(
    assets=FRAMES_ASSETS,
    jobs=[imaging_datasets_job, frames_job],
    sensors=[frames_manifest_sensor],
)
