"""Fixed-size crops centred on cells, for training models."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import lance
import numpy as np
import pyarrow as pa
from numpy.lib.stride_tricks import sliding_window_view

from imaging_assets.core.provenance import PACKAGE_VERSION
from imaging_assets.jump.images import site_array
from imaging_assets.jump.schemas import cell_crops_schema

__all__ = ["cell_crops_schema", "crop_batches", "crop_cells"]


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


def crop_batches(
    images: lance.LanceDataset,
    cells: lance.LanceDataset,
    channels: list[str],
    schema: pa.Schema,
    partition_filter: str,
    *,
    size: int,
    center: str,
    run_id: str,
    counted: dict[str, int],
) -> Iterator[pa.RecordBatch]:
    """One plate's crops, site by site: each site's pixels decoded once, every cell of the site
    cropped from them (`center` names the compartment whose Location_Center_X/Y is the centre)."""
    x_col = f"{center}_Location_Center_X"
    y_col = f"{center}_Location_Center_Y"
    site_columns = ["site_key", "source", "plate", "well", "site", "recipe_name"]
    for c in channels:
        site_columns += [f"{c}_pixels", f"{c}_shape", f"{c}_dtype", f"{c}_crop_offset"]
    # The plate's cell centres, read once (a few small columns), grouped by site in memory: one
    # scan of cell_profiles per plate instead of one per site.
    centres = cells.to_table(
        columns=["site_key", "cell_id", "object_number", x_col, y_col], filter=partition_filter
    ).sort_by("site_key")
    site_keys = centres["site_key"].to_numpy(zero_copy_only=False)
    written_at = dt.datetime.now(dt.UTC)
    for site_batch in images.to_batches(
        columns=site_columns, filter=partition_filter, batch_size=4
    ):
        for site in site_batch.to_pylist():
            start = int(np.searchsorted(site_keys, site["site_key"], side="left"))
            stop = int(np.searchsorted(site_keys, site["site_key"], side="right"))
            if stop == start:
                continue
            cell_rows = centres.slice(start, stop - start)
            offset_y, offset_x = site[f"{channels[0]}_crop_offset"] or (0, 0)
            stack = np.stack([site_array(site, c) for c in channels])
            centers = np.column_stack(
                [
                    cell_rows[x_col].to_numpy(zero_copy_only=False) - offset_x,
                    cell_rows[y_col].to_numpy(zero_copy_only=False) - offset_y,
                ]
            )
            crops, touches = crop_cells(stack, centers, size=size)
            counted["cells"] += len(crops)
            columns: dict[str, Any] = {
                "cell_id": cell_rows["cell_id"].to_pylist(),
                "site_key": [site["site_key"]] * len(crops),
                "source": [site["source"]] * len(crops),
                "plate": [site["plate"]] * len(crops),
                "well": [site["well"]] * len(crops),
                "site": [site["site"]] * len(crops),
                "object_number": cell_rows["object_number"].to_pylist(),
                "center_x": centers[:, 0],
                "center_y": centers[:, 1],
                "touches_border": touches,
                "crop_shape": [[size, size]] * len(crops),
                "dtype": [str(stack.dtype)] * len(crops),
                "site_images_version": [images.version] * len(crops),
                "recipe_name": [site["recipe_name"]] * len(crops),
                "package_version": [PACKAGE_VERSION] * len(crops),
                "dagster_run_id": [run_id] * len(crops),
                "written_at": [written_at] * len(crops),
            }
            for index, c in enumerate(channels):
                columns[f"{c}_crop"] = [crop[index].tobytes() for crop in crops]
            yield pa.RecordBatch.from_pydict(
                {name: columns[name] for name in schema.names}, schema=schema
            )
