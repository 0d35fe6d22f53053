"""Fixed-size crops centred on cells, for training models."""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from imaging_assets.jump.schemas import cell_crops_schema

__all__ = ["cell_crops_schema", "crop_cells"]


def crop_cells(
    image: np.ndarray, centers_xy: np.ndarray, size: int = 96
) -> tuple[np.ndarray, np.ndarray]:
    """Crops (N, C, size, size) around each (x, y) centre, zero-padded where they leave the image.

    Centre rule: the crop's top-left is (floor(y) - size // 2, floor(x) - size // 2), so the pixel
    whose index is floor(centre) sits at (size // 2, size // 2) of the crop, for odd and even sizes
    (floor, not round, so that int(center) finds the same pixel; CellProfiler's centres are means of
    pixel indices, so this is at most one pixel off the nearest). Centres outside the image are
    clipped to its edge. touches_border is True when any part of the crop lies outside the image
    (those pixels are zeros). Vectorised: the image is padded once, then one fancy-index gather
    over a strided window view copies every crop.
    """
    if image.ndim == 2:
        image = image[None]
    if image.ndim != 3:
        raise ValueError(f"image must be (C, H, W), got shape {image.shape}")
    channels, height, width = image.shape
    centers = np.asarray(centers_xy, dtype=np.float64).reshape(-1, 2)
    if not np.isfinite(centers).all():
        raise ValueError("cell centres must be finite")
    half = size // 2
    xs = np.clip(np.floor(centers[:, 0]).astype(np.int64), 0, width - 1)
    ys = np.clip(np.floor(centers[:, 1]).astype(np.int64), 0, height - 1)
    tops, lefts = ys - half, xs - half
    touches = (tops < 0) | (lefts < 0) | (tops + size > height) | (lefts + size > width)
    padded = np.pad(image, ((0, 0), (half, size - half), (half, size - half)))
    windows = sliding_window_view(padded, (size, size), axis=(1, 2))  # (C, H+1, W+1, size, size)
    crops = windows[:, tops + half, lefts + half]  # (C, N, size, size), a copy
    return np.ascontiguousarray(crops.transpose(1, 0, 2, 3)), touches
