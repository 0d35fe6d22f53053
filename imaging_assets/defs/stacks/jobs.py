"""`stacks_job`: slices, projection and skeleton of one specimen."""

from dagster import AssetSelection, define_asset_job

from imaging_assets.defs.stacks.assets import skeletons, zstack_projections, zstack_slices
from imaging_assets.defs.stacks.partitions import specimens_partitions

stacks_job = define_asset_job(
    name="stacks_job",
    selection=AssetSelection.assets(zstack_slices, zstack_projections, skeletons),
    partitions_def=specimens_partitions,
    description="Slices, projection and skeleton of one specimen.",
    tags={"imaging_assets/kind": "specimen"},
)
