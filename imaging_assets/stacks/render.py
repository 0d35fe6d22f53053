"""The picture of a specimen: its projection as a PNG worth opening, the skeleton drawn over it.

- Contrast: stretched between robust percentiles (0.5 and 99.5) of the projection, so a few hot
  or dead pixels do not flatten it.
- Size: enlarged by an integer factor (nearest neighbour, no invented detail) until the long side
  reaches `display_side` (512 by default), so a small stack is not a thumbnail in the Dagster UI;
  a large stack is already reduced to at most `max_side` by the projection.
- Skeleton: SWC x, y are in stack pixels (pixel i spans [i - 0.5, i + 0.5], as the sample
  collection renders its trees: demo/gallery/stacks.py), or in `units_per_pixel` units per pixel
  (e.g. the pixel size in um, when the SWC is in um as the SWC specification says). A point (x, y)
  is drawn at ((x + 0.5) * scale - 0.5, (y + 0.5) * scale - 0.5), scale = enlargement /
  downsampling factor. Each edge is a line from parent to child; the soma (type 1 nodes, or the
  roots when none is typed soma) is a ring of the node's radius (at least 3 px). When fewer than
  95 % of the nodes fall inside the stack, the units are wrong and nothing is drawn; the note
  says so.
- Colours: a palette PNG (one byte a pixel): 250 grey levels, then the edge and soma colours.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
from PIL import Image, ImageDraw

GREYS = 250  # palette indices 0..249: grey ramp
EDGE, SOMA = 250, 251  # palette indices of the overlay
EDGE_RGB, SOMA_RGB = (255, 0, 200), (0, 200, 255)  # magenta lines, cyan soma ring
PERCENTILES = (0.5, 99.5)
MIN_INSIDE = 0.95  # share of nodes inside the stack below which the SWC units are taken as wrong
SOMA_TYPE = 1


@dataclass(frozen=True)
class Rendering:
    png: bytes
    width: int
    height: int
    scale: float  # PNG pixels per stack pixel
    nodes_drawn: int | None  # None: no skeleton
    note: str  # what was drawn, or why not

    def to_point(self, x: float, y: float) -> tuple[float, float]:
        """Where a stack point (pixel units) is in the PNG."""
        return (x + 0.5) * self.scale - 0.5, (y + 0.5) * self.scale - 0.5


def stretch(array: np.ndarray, percentiles: tuple[float, float] = PERCENTILES) -> np.ndarray:
    """Palette indices 0..GREYS-1: the array scaled linearly between two of its percentiles."""
    values = array.astype(np.float32)
    low, high = np.percentile(values, percentiles)
    scaled = (values - low) / max(float(high - low), 1e-6) * (GREYS - 1)
    return np.clip(np.rint(scaled), 0, GREYS - 1).astype(np.uint8)


def enlargement(height: int, width: int, display_side: int) -> int:
    return max(1, display_side // max(height, width))


def render(
    projection: np.ndarray,
    factor: int,
    stack_shape: tuple[int, int],
    skeleton: pa.Table | None = None,
    *,
    display_side: int = 512,
    units_per_pixel: float = 1.0,
) -> Rendering:
    """The projection (of a stack of `stack_shape` (height, width), reduced by `factor`) as a
    PNG, with the skeleton (SWC nodes: n, type, x, y, radius, parent) drawn when given."""
    grey = stretch(projection)
    up = enlargement(*grey.shape, display_side)
    if up > 1:
        grey = np.repeat(np.repeat(grey, up, axis=0), up, axis=1)
    image = Image.fromarray(grey, mode="L").convert("P")
    image.putpalette(_palette())
    scale = up / factor
    drawn, note = None, "no skeleton"
    if skeleton is not None and skeleton.num_rows:
        drawn, note = _draw(image, skeleton, scale, stack_shape, units_per_pixel)
    sink = io.BytesIO()
    image.save(sink, format="PNG", optimize=False)
    return Rendering(sink.getvalue(), image.width, image.height, scale, drawn, note)


def _palette() -> list[int]:
    ramp = np.linspace(0, 255, GREYS).round().astype(int)
    colours = [(int(v), int(v), int(v)) for v in ramp] + [EDGE_RGB, SOMA_RGB]
    colours += [(0, 0, 0)] * (256 - len(colours))
    return [channel for colour in colours for channel in colour]


def _draw(
    image: Image.Image,
    skeleton: pa.Table,
    scale: float,
    stack_shape: tuple[int, int],
    units_per_pixel: float,
) -> tuple[int, str]:
    nodes = skeleton.select(["n", "type", "x", "y", "radius", "parent"]).to_pydict()
    x = np.asarray(nodes["x"], dtype=np.float64) / units_per_pixel
    y = np.asarray(nodes["y"], dtype=np.float64) / units_per_pixel
    height, width = stack_shape
    inside = (x >= -0.5) & (x <= width - 0.5) & (y >= -0.5) & (y <= height - 0.5)
    count = len(x)
    if np.count_nonzero(inside) < MIN_INSIDE * count:
        return 0, (
            f"skeleton not drawn: {count - int(np.count_nonzero(inside))} of its {count} nodes lie "
            f"outside the {width}x{height} stack (x {x.min():.0f}..{x.max():.0f}, y "
            f"{y.min():.0f}..{y.max():.0f} pixels at {units_per_pixel:g} SWC units per pixel); "
            "set units_per_pixel to the SWC's units per stack pixel"
        )
    # PIL truncates coordinates: round them, so each point lands on its nearest pixel
    px = np.rint((x + 0.5) * scale - 0.5).astype(int).tolist()
    py = np.rint((y + 0.5) * scale - 0.5).astype(int).tolist()
    index = {n: i for i, n in enumerate(nodes["n"])}
    line = max(1, round(max(image.size) / 512))
    draw = ImageDraw.Draw(image)
    edges = 0
    for i, parent in enumerate(nodes["parent"]):
        j = index.get(parent)
        if j is not None:
            draw.line([(px[j], py[j]), (px[i], py[i])], fill=EDGE, width=line)
            edges += 1
    types = np.asarray(nodes["type"])
    soma = np.flatnonzero(types == SOMA_TYPE)
    if soma.size == 0:
        soma = np.flatnonzero(np.asarray(nodes["parent"]) == -1)
    for i in soma:
        r = max(3, round(float(nodes["radius"][i] or 0) / units_per_pixel * scale))
        box = [px[i] - r, py[i] - r, px[i] + r, py[i] + r]
        draw.ellipse(box, outline=SOMA, width=line)
    return count, (
        f"skeleton drawn: {count} nodes, {edges} edges (magenta, parent to child), soma "
        f"{'ring' if soma.size == 1 else 'rings'} in cyan"
    )
