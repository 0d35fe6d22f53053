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
from imaging_assets.processing.tiff import (
    DEFAULT_MAX_PIXELS,
    ImageDecodeError,
    TiffHeader,
    check_header,
    decode_tiff,
    dtype_accepted,
    read_tiff_header,
)

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "RECIPES",
    "ImageDecodeError",
    "ProcessedChannel",
    "Recipe",
    "TiffHeader",
    "apply_recipe",
    "center_crop",
    "check_header",
    "crop_offset",
    "decode_tiff",
    "dtype_accepted",
    "get_recipe",
    "percentile_bounds",
    "percentiles",
    "read_tiff_header",
]
