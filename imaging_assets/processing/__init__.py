"""Pure functions on arrays: TIFF decoding, exact fast percentiles, named processing recipes,
lossless pixel codecs."""

from imaging_assets.processing.codecs import (
    CODECS,
    DEFAULT_CODEC,
    CodecError,
    Encoded,
    codec_name,
    default_codec,
)
from imaging_assets.processing.codecs import decode as decode_pixels
from imaging_assets.processing.codecs import encode as encode_pixels
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
    "CODECS",
    "DEFAULT_CODEC",
    "DEFAULT_MAX_PIXELS",
    "RECIPES",
    "CodecError",
    "Encoded",
    "ImageDecodeError",
    "ProcessedChannel",
    "Recipe",
    "TiffHeader",
    "apply_recipe",
    "center_crop",
    "check_header",
    "codec_name",
    "crop_offset",
    "decode_pixels",
    "decode_tiff",
    "default_codec",
    "dtype_accepted",
    "encode_pixels",
    "get_recipe",
    "percentile_bounds",
    "percentiles",
    "read_tiff_header",
]
