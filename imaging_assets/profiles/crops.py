"""Fixed-size crops centred on cells, for training models."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from imaging_assets.schemas import ZSTD_LEVEL_1, channel_prefix


def crop_cells(
    image: np.ndarray, centers_xy: np.ndarray, size: int = 96
) -> tuple[np.ndarray, np.ndarray]:
    """Crops (N, C, size, size) around each (x, y) centre, zero-padded where they leave the image.

    Centre rule: the crop's top-left is (floor(y) - size // 2, floor(x) - size // 2), so the pixel
    containing the centre sits at (size // 2, size // 2) of the crop. touches_border is True when
    any part of the crop lies outside the image (those pixels are zeros).
    """
    if image.ndim == 2:
        image = image[None]
    channels, height, width = image.shape
    centers = np.asarray(centers_xy, dtype=np.float64).reshape(-1, 2)
    half = size // 2
    padded = np.pad(image, ((0, 0), (size, size), (size, size)))
    crops = np.zeros((len(centers), channels, size, size), dtype=image.dtype)
    touches = np.zeros(len(centers), dtype=bool)
    for index, (x, y) in enumerate(centers):
        top = int(np.floor(y)) - half
        left = int(np.floor(x)) - half
        touches[index] = top < 0 or left < 0 or top + size > height or left + size > width
        top_p = min(max(top + size, 0), height + size)
        left_p = min(max(left + size, 0), width + size)
        window = padded[:, top_p : top_p + size, left_p : left_p + size]
        crops[index, :, : window.shape[1], : window.shape[2]] = window
    return crops, touches


def cell_crops_schema(channels: list[str], size: int) -> pa.Schema:
    fields = [
        pa.field("cell_id", pa.string()),
        pa.field("site_key", pa.string()),
        pa.field("source", pa.string()),
        pa.field("plate", pa.string()),
        pa.field("well", pa.string()),
        pa.field("site", pa.string()),
        pa.field("object_number", pa.int64()),
        pa.field("center_x", pa.float64()),
        pa.field("center_y", pa.float64()),
        pa.field("touches_border", pa.bool_()),
    ]
    for channel in channels:
        fields.append(
            pa.field(f"{channel_prefix(channel)}_crop", pa.large_binary(), metadata=ZSTD_LEVEL_1)
        )
    fields += [
        pa.field("crop_shape", pa.list_(pa.int32())),
        pa.field("dtype", pa.string()),
        pa.field("site_images_version", pa.int64()),
        pa.field("recipe_name", pa.string()),
    ]
    return pa.schema(fields, metadata={b"imaging_assets:crop_size": str(size).encode()})
