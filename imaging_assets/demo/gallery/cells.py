"""Synthetic Cell Painting sites: cells drawn per channel, and the objects CellProfiler would find.

Each site has one layout of cells (centres, nucleus and cell radii) shared by its channels: a
Gaussian nucleus in DNA, a membrane ring in AGP, diffuse cytoplasm in ER, punctate cytoplasm in
Mito, cytoplasm plus nucleoli in RNA, low-contrast cells in Brightfield. Every cell is drawn only
in its bounding window, so a 1080x1080 site costs a few milliseconds per channel.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

BACKGROUND = {"DNA": 400, "AGP": 700, "ER": 600, "Mito": 500, "RNA": 650, "Brightfield": 9000}
PEAK = {"DNA": 18000, "AGP": 9000, "ER": 11000, "Mito": 14000, "RNA": 10000, "Brightfield": 2500}


def site_seed(seed: int, *parts: object) -> int:
    """A 64-bit seed that depends only on the given identifiers, not on worker order."""
    text = "\x1f".join(str(p) for p in (seed, *parts)).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")


@dataclass(frozen=True)
class SiteLayout:
    """Cells of one site, in pixel coordinates (x = column, y = row)."""

    centers: np.ndarray  # (N, 2) float: x, y
    nucleus_radius: np.ndarray  # (N,)
    cell_radius: np.ndarray  # (N,)
    size: int

    def bounding_boxes(self, radius: np.ndarray) -> np.ndarray:
        """(N, 4) min_x, min_y, max_x, max_y clipped to the image."""
        lo = np.clip(np.floor(self.centers - radius[:, None]), 0, self.size - 1)
        hi = np.clip(np.ceil(self.centers + radius[:, None]), 0, self.size - 1)
        return np.column_stack([lo, hi]).astype(np.int32)


def make_layout(rng: np.random.Generator, size: int, cells_per_megapixel: float) -> SiteLayout:
    scale = size / 1080
    count = max(3, int(rng.poisson(cells_per_megapixel * (size * size) / 1e6)))
    nucleus = rng.uniform(9, 14, count) * max(scale, 0.25)
    cell = nucleus * rng.uniform(1.9, 2.5, count)
    centers = rng.uniform(0, size, (count, 2))
    return SiteLayout(centers, nucleus, cell, size)


def _window(layout: SiteLayout, index: int, radius: float):
    x, y = layout.centers[index]
    reach = int(np.ceil(radius * 1.6)) + 1
    x0, x1 = max(int(x) - reach, 0), min(int(x) + reach + 1, layout.size)
    y0, y1 = max(int(y) - reach, 0), min(int(y) + reach + 1, layout.size)
    yy, xx = np.ogrid[y0:y1, x0:x1]
    distance = np.sqrt((xx - x) ** 2 + (yy - y) ** 2)
    return (slice(y0, y1), slice(x0, x1)), distance


def draw_channel(
    layout: SiteLayout, channel: str, rng: np.random.Generator, brightness: float = 1.0
) -> np.ndarray:
    """One channel of a site as uint16."""
    size = layout.size
    image = np.full((size, size), float(BACKGROUND.get(channel, 500)), dtype=np.float32)
    peak = PEAK.get(channel, 8000) * brightness
    for i in range(len(layout.centers)):
        rn, rc = layout.nucleus_radius[i], layout.cell_radius[i]
        window, d = _window(layout, i, rc)
        gain = peak * rng.uniform(0.6, 1.2)
        if channel == "DNA":
            signal = np.exp(-((d / rn) ** 4))
        elif channel == "AGP":
            signal = np.exp(-(((d - rc) / (0.18 * rc)) ** 2)) + 0.15 * (d < rc)
        elif channel == "ER":
            signal = (d < rc) * (0.35 + 0.65 * np.exp(-(((d - 1.3 * rn) / (0.5 * rc)) ** 2)))
        elif channel == "Mito":
            texture = rng.random(d.shape, dtype=np.float32) ** 3
            signal = (d < rc) * (d > 0.8 * rn) * texture
        elif channel == "RNA":
            signal = (d < rc) * 0.45 + np.exp(-((d / (0.35 * rn)) ** 2)) * 0.8
        else:  # brightfield: dark rim, faint interior
            signal = -np.exp(-(((d - rc) / (0.12 * rc)) ** 2)) + 0.1 * (d < rc)
        image[window] += gain * signal
    noise = rng.standard_normal(image.shape, dtype=np.float32)
    image += noise * (25.0 + 1.5 * np.sqrt(np.clip(image, 0, None)))
    return np.clip(image, 0, 65535).astype(np.uint16)


def illumination_field(size: int, channel: str, seed: int) -> np.ndarray:
    """A smooth float32 illumination function around 1 (brighter centre), like CellProfiler's."""
    rng = np.random.default_rng(site_seed(seed, "illum", channel, size))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / max(size - 1, 1)
    cx, cy = rng.uniform(0.4, 0.6, 2)
    field = 1.15 - 0.3 * ((xx - cx) ** 2 + (yy - cy) ** 2)
    return (field / field.mean()).astype(np.float32)
