"""A small PNG of a few sites, channels side by side, for the Dagster UI."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
from PIL import Image, ImageDraw, ImageFont

from imaging_assets.jump.schemas import channel_prefix
from imaging_assets.processing.codecs import decode


def to_uint8(array: np.ndarray) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    low, high = np.percentile(array, [1, 99])
    scaled = (array.astype(np.float32) - low) / max(high - low, 1e-6) * 255
    return np.clip(scaled, 0, 255).astype(np.uint8)


def site_array(row: dict, channel: str) -> np.ndarray:
    """One channel of a site_images row as an array, whatever codec wrote it.

    The codec is the row's `<c>_codec` when that column was read (null: "raw/1", as in rows
    written before codecs); otherwise it is told from the bytes (a raw cell is exactly
    height * width * itemsize long, a pzstd frame shorter and starts with its magic).
    """
    c = channel_prefix(channel)
    return decode(row[f"{c}_pixels"], row[f"{c}_shape"], row[f"{c}_dtype"], row.get(f"{c}_codec"))


LABEL_HEIGHT = 14  # px of the text band over each tile
LABEL_COLOR = 255


def labelled(tile: np.ndarray, text: str) -> np.ndarray:
    """The tile under a black band that names it (PIL's built-in font: no font files needed)."""
    band = Image.new("L", (tile.shape[1], LABEL_HEIGHT), 0)
    ImageDraw.Draw(band).text((2, 1), text, fill=LABEL_COLOR, font=ImageFont.load_default())
    return np.concatenate([np.asarray(band), tile], axis=0)


def contact_sheet(table: pa.Table, channels: list[str], n_sites: int = 4, tile: int = 128) -> bytes:
    """PNG bytes: one row per site (up to n_sites), one tile per channel, each about `tile` px;
    each row is headed by its site key and control role, each tile by its channel."""
    rows = []
    for row in table.slice(0, n_sites).to_pylist():
        tiles = []
        for channel in channels:
            array = site_array(row, channel)
            step = max(1, int(np.ceil(max(array.shape) / tile)))
            tiles.append(to_uint8(array[::step, ::step]))
        height = min(t.shape[0] for t in tiles)
        width = min(t.shape[1] for t in tiles)
        strip = np.concatenate(
            [
                labelled(t[:height, :width], channel)
                for t, channel in zip(tiles, channels, strict=True)
            ],
            axis=1,
        )
        role = row.get("control_role") or "unknown"
        rows.append(labelled(strip, f"{row['site_key']}  ({role})"))
    if not rows:
        rows = [np.zeros((8, 8 * max(len(channels), 1)), dtype=np.uint8)]
    width = min(r.shape[1] for r in rows)
    sheet = np.concatenate([r[:, :width] for r in rows], axis=0)
    sink = io.BytesIO()
    Image.fromarray(sheet).save(sink, format="PNG", optimize=True)
    return sink.getvalue()
