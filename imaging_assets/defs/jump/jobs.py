"""Jobs: `plate_job` runs every per-plate asset for one plate; `images_job` only the image path;
`plate_batch_job` runs plate_job for many plates in one queued run."""

from dagster import AssetSelection, define_asset_job

from imaging_assets.defs.common.batches import partition_batch_job
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


plate_batch_job = partition_batch_job(
    name="plate_batch_job",
    job_name=plate_job.name,
    description=(
        "plate_job for each listed plate, one run per plate inside this run's process: thousands "
        "of plates through the queue without a process per plate. A failing plate fails only its "
        "own run; this run then fails naming it, and re-executing it runs only what did not "
        "succeed."
    ),
    fallback=("imaging_assets.definitions", "defs"),
    tags={"imaging_assets/kind": "plate_batch"},
)
