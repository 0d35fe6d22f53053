"""A downsampled intensity projection of a z-stack (a few hundred pixels a side), for QC galleries.

Each slice is reduced by blocks of `factor` x `factor` pixels (the block's max, or min for "min"),
then the reduced slices are combined across z the same way. Only one slice is held at a time.
Brightfield neurites are dark on a bright field: kind="min" shows them; "max" is the default.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pyarrow as pa
from PIL import Image

from imaging_assets.core import lance_tables


def factor_for(height: int, width: int, max_side: int) -> int:
    return max(1, math.ceil(max(height, width) / max_side))


def reduce_blocks(array: np.ndarray, factor: int, kind: str = "max") -> np.ndarray:
    """Block max (or min) of a 2-D array; edge blocks are padded with the edge values."""
    if factor == 1:
        return array.copy()
    height, width = array.shape
    ph, pw = -height % factor, -width % factor
    if ph or pw:
        array = np.pad(array, ((0, ph), (0, pw)), mode="edge")
    blocks = array.reshape(array.shape[0] // factor, factor, array.shape[1] // factor, factor)
    return blocks.max(axis=(1, 3)) if kind == "max" else blocks.min(axis=(1, 3))


class Projection:
    """Accumulates reduced slices: `add(slice)` per z, then `.array`."""

    def __init__(self, height: int, width: int, max_side: int = 256, kind: str = "max") -> None:
        if kind not in ("max", "min"):
            raise ValueError(f"projection kind {kind!r}: expected 'max' or 'min'")
        self.kind = kind
        self.factor = factor_for(height, width, max_side)
        self.array: np.ndarray | None = None
        self.slices = 0

    def add(self, slice_2d: np.ndarray) -> None:
        reduced = reduce_blocks(slice_2d, self.factor, self.kind)
        if self.array is None:
            self.array = reduced
        else:
            combine = np.maximum if self.kind == "max" else np.minimum
            combine(self.array, reduced, out=self.array)
        self.slices += 1


def to_png(array: np.ndarray) -> bytes:
    """PNG of the projection, contrast-stretched between the 1st and 99.5th percentiles."""
    values = array.astype(np.float32)
    low, high = np.percentile(values, [1, 99.5])
    scaled = np.clip((values - low) / max(float(high - low), 1e-6) * 255, 0, 255).astype(np.uint8)
    sink = io.BytesIO()
    Image.fromarray(scaled).save(sink, format="PNG")
    return sink.getvalue()


PROJECTIONS_SCHEMA = pa.schema(
    [
        pa.field("specimen", pa.string()),
        pa.field("kind", pa.string()),
        pa.field("slices", pa.int32()),
        pa.field("height", pa.int32()),
        pa.field("width", pa.int32()),
        pa.field("factor", pa.int32()),
        pa.field("proj_height", pa.int32()),
        pa.field("proj_width", pa.int32()),
        pa.field("dtype", pa.string()),
        # zstd in the cell (codecs.ZSTD): Lance format 2.2 stores a page holding one value
        # uncompressed (measured), and projections are one row per commit
        pa.field("pixels", pa.large_binary()),
        pa.field("png", pa.large_binary()),
        pa.field("slices_dataset_version", pa.int64()),
        pa.field("package_version", pa.string()),
        pa.field("dagster_run_id", pa.string()),
        pa.field("written_at", pa.timestamp("us", tz="UTC")),
        lance_tables.addable(pa.field("pixels_codec", pa.string())),
    ]
)
