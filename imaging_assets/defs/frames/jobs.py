"""`imaging_datasets_job` registers datasets; `frames_job` ingests one dataset."""

from dagster import AssetSelection, define_asset_job

from imaging_assets.defs.frames.assets import frames, imaging_datasets
from imaging_assets.defs.frames.partitions import datasets_partitions

imaging_datasets_job = define_asset_job(
    name="imaging_datasets_job",
    selection=AssetSelection.assets(imaging_datasets),
    description="Validate the ingest manifest and register its datasets (partitions `datasets`).",
)

frames_job = define_asset_job(
    name="frames_job",
    selection=AssetSelection.assets(frames),
    partitions_def=datasets_partitions,
    description="Ingest one dataset: its frames into frames.lance, or its file as is.",
    tags={"imaging_assets/kind": "dataset"},
)
