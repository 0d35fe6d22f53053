"""The code location: every asset, check, job, sensor and schedule, with their resources."""

from dagster import Definitions

from imaging_assets.assets import ALL_ASSET_CHECKS, ALL_ASSETS
from imaging_assets.jobs import metadata_job, plate_job
from imaging_assets.resources import default_resources

defs = Definitions(
    assets=ALL_ASSETS,
    asset_checks=ALL_ASSET_CHECKS,
    jobs=[metadata_job, plate_job],
    resources=default_resources(),
)
