"""CellProfiler profiles as typed tables that carry site_images' keys; digests; cell crops."""

from imaging_assets.jump.profiles.crops import cell_crops_schema, crop_cells
from imaging_assets.jump.profiles.provenance import (
    digest_summary,
    image_digests,
    image_digests_from_merged,
    verify_digests,
)
from imaging_assets.jump.profiles.single_cell import (
    cell_profiles_schema_from_sqlite,
    iter_cell_profiles,
    iter_cell_profiles_from_csv,
)
from imaging_assets.jump.profiles.well import read_well_profiles

__all__ = [
    "cell_crops_schema",
    "cell_profiles_schema_from_sqlite",
    "crop_cells",
    "digest_summary",
    "image_digests",
    "image_digests_from_merged",
    "iter_cell_profiles",
    "iter_cell_profiles_from_csv",
    "read_well_profiles",
    "verify_digests",
]
