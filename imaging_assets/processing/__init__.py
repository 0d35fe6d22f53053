"""Pure functions on arrays: TIFF decoding, exact fast percentiles, named processing recipes."""

from imaging_assets.processing.percentiles import percentile_bounds, percentiles
from imaging_assets.processing.recipes import (
    RECIPES,
    ProcessedChannel,
    Recipe,
    apply_recipe,
    center_crop,
    crop_offset,
    get_recipe,
)
from imaging_assets.processing.tiff import ImageDecodeError, decode_tiff

__all__ = [
    "RECIPES",
    "ImageDecodeError",
    "ProcessedChannel",
    "Recipe",
    "apply_recipe",
    "center_crop",
    "crop_offset",
    "decode_tiff",
    "get_recipe",
    "percentile_bounds",
    "percentiles",
]
