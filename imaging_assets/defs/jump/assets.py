"""Software-defined assets, one module per group."""

from imaging_assets.defs.jump.images import site_images
from imaging_assets.defs.jump.load_data import load_data
from imaging_assets.defs.jump.metadata import metadata_table_assets, well_metadata
from imaging_assets.defs.jump.plates import plate_index
from imaging_assets.defs.jump.profiles import cell_crops, cell_profiles, well_profiles
from imaging_assets.defs.jump.sampling import sampled_sites

UNPARTITIONED_ASSETS = [*metadata_table_assets, well_metadata, plate_index]
PLATE_ASSETS = [load_data, sampled_sites, site_images, well_profiles, cell_profiles, cell_crops]
ALL_ASSETS = [*UNPARTITIONED_ASSETS, *PLATE_ASSETS]
