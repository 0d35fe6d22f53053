"""The stacks wing: specimen z-stacks and skeletons, one partition per specimen."""

from dagster import Definitions

from imaging_assets.core.settings import home
from imaging_assets.defs.stacks.assets import STACKS_ASSETS
from imaging_assets.defs.stacks.jobs import stacks_job
from imaging_assets.defs.stacks.resources import collection_from_env
from imaging_assets.defs.stacks.sensors import new_specimens_sensor

defs = Definitions(
    assets=STACKS_ASSETS,
    jobs=[stacks_job],
    sensors=[new_specimens_sensor],
    resources={"stack_collection": collection_from_env(str(home() / "stacks"))},
)
