"""Jobs: `plate_job` runs every per-plate asset for one plate; `images_job` only the image path."""

from dagster import AssetSelection, define_asset_job

from imaging_assets.defs.jump.partitions import plates_partitions

plate_job = define_asset_job(
    name="plate_job",
    # what it includes, not what it excludes: other domains' assets never join a plate run
    selection=AssetSelection.groups("plates", "images", "profiles")
    - AssetSelection.assets("plate_index"),
    partitions_def=plates_partitions,
    description="Every per-plate asset (load_data through images and profiles) for one plate.",
    tags={"imaging_assets/kind": "plate"},
)

images_job = define_asset_job(
    name="images_job",
    selection=AssetSelection.assets("load_data", "sampled_sites", "site_images"),
    partitions_def=plates_partitions,
    description=(
        "load_data, sampling and site_images for one plate: for collections without "
        "CellProfiler outputs, or to refresh images without touching profiles."
    ),
    tags={"imaging_assets/kind": "plate"},
)

metadata_job = define_asset_job(
    name="metadata_job",
    selection=AssetSelection.groups("metadata") | AssetSelection.assets("plate_index"),
    description="The JUMP metadata tables, well metadata and the plate index (registers partitions).",
)
