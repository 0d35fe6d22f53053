"""A plate as scientists look at it: one QC metric as a heatmap over the plate's wells.

Rows A.. and columns 1.. of the smallest standard format (96, 384 or 1536 wells; at least 384 by
default, as JUMP's plates are) that holds every well of the plate; each well's colour is the
median of the metric over its imaged sites, wells with a QC-flagged site get a red frame,
controls are marked (+ poscon, - negcon) and wells that were not imaged stay grey. Pure: rows in,
PNG bytes out (PIL, no plotting library); the site_images asset stores it in the lake and shows
it in its metadata, the explore notebook draws the same for any plate.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont, PngImagePlugin

FORMATS = ((8, 12), (16, 24), (32, 48))  # 96, 384 and 1536 wells
_WELL = re.compile(r"^([A-Za-z]{1,2})0*(\d{1,2})$")
# viridis at 0, 1/8 .. 1 (perceptually uniform; dark = low)
_VIRIDIS = np.array(
    [
        (68, 1, 84),
        (71, 44, 122),
        (59, 81, 139),
        (44, 113, 142),
        (33, 144, 141),
        (39, 173, 129),
        (92, 200, 99),
        (170, 220, 50),
        (253, 231, 37),
    ],
    dtype=np.float64,
)
NOT_IMAGED = (215, 215, 215)
NO_VALUE = (150, 150, 150)
FLAGGED = (220, 30, 30)
BACKGROUND = (255, 255, 255)
TEXT = (20, 20, 20)
ROLE_MARKS = {"poscon": "+", "negcon": "-"}  # drawn as strokes: no font glyph needed


def parse_well(well: str) -> tuple[int, int]:
    """(row, column), 0-based, of a well name: "A01" -> (0, 0), "P24" -> (15, 23), "AF48" ->
    (31, 47) (rows after Z continue AA, AB, ... as 1536-well plates name them)."""
    match = _WELL.match(str(well).strip())
    if not match:
        raise ValueError(f"{well!r} is not a well name like A01")
    letters, column = match.group(1).upper(), int(match.group(2))
    row = (
        ord(letters[-1])
        - ord("A")
        + (26 * (ord(letters[0]) - ord("A") + 1) if len(letters) == 2 else 0)
    )
    if column < 1:
        raise ValueError(f"{well!r}: columns start at 1")
    return row, column - 1


def row_name(row: int) -> str:
    return chr(ord("A") + row) if row < 26 else "A" + chr(ord("A") + row - 26)


def plate_format(wells: Iterable[str], minimum: int = 96) -> tuple[int, int]:
    """(rows, columns) of the smallest standard plate of at least `minimum` wells that holds
    every well. The wells a run imaged may all lie in a corner of the plate: pass the plate's
    known size as the minimum (JUMP's Cell Painting plates have 384 wells)."""
    positions = [parse_well(w) for w in wells]
    rows = max((r for r, _ in positions), default=0) + 1
    columns = max((c for _, c in positions), default=0) + 1
    for format_rows, format_columns in FORMATS:
        if format_rows * format_columns < minimum:
            continue
        if rows <= format_rows and columns <= format_columns:
            return format_rows, format_columns
    raise ValueError(f"wells beyond a 1536-well plate ({rows} rows, {columns} columns)")


@dataclass(frozen=True)
class WellValue:
    well: str
    value: float | None  # the median over the well's sites (None: no finite value)
    sites: int
    flagged: int  # sites flagged by QC
    control_role: str | None


def well_values(
    wells: Sequence[str],
    values: Sequence[float | None],
    roles: Sequence[str | None],
    flagged: Sequence[bool],
) -> list[WellValue]:
    """Per-site columns (one entry per site) reduced to one entry per well."""
    by_well: dict[str, dict] = {}
    for well, value, role, bad in zip(wells, values, roles, flagged, strict=True):
        entry = by_well.setdefault(well, {"values": [], "sites": 0, "flagged": 0, "role": role})
        entry["sites"] += 1
        entry["flagged"] += bool(bad)
        if value is not None and np.isfinite(value):
            entry["values"].append(float(value))
    return [
        WellValue(
            well,
            float(np.median(e["values"])) if e["values"] else None,
            e["sites"],
            e["flagged"],
            e["role"],
        )
        for well, e in sorted(by_well.items(), key=lambda item: parse_well(item[0]))
    ]


def colour(fraction: float) -> tuple[int, int, int]:
    """The viridis colour at fraction 0..1."""
    position = min(max(fraction, 0.0), 1.0) * (len(_VIRIDIS) - 1)
    low = int(np.floor(position))
    high = min(low + 1, len(_VIRIDIS) - 1)
    mixed = _VIRIDIS[low] + (position - low) * (_VIRIDIS[high] - _VIRIDIS[low])
    return tuple(int(round(v)) for v in mixed)


@dataclass(frozen=True)
class Layout:
    """Where things are drawn, in pixels: the grid's origin, the cell size, the image size."""

    rows: int
    columns: int
    cell: int
    left: int
    top: int
    width: int
    height: int

    def cell_box(self, row: int, column: int) -> tuple[int, int, int, int]:
        x0 = self.left + column * self.cell
        y0 = self.top + row * self.cell
        return x0, y0, x0 + self.cell - 1, y0 + self.cell - 1

    def cell_centre(self, row: int, column: int) -> tuple[int, int]:
        x0, y0, x1, y1 = self.cell_box(row, column)
        return (x0 + x1) // 2, (y0 + y1) // 2


TITLE_HEIGHT = 52
LEGEND_HEIGHT = 70


def layout(rows: int, columns: int) -> Layout:
    cell = {12: 48, 24: 30, 48: 16}.get(columns, 30)
    left = 34
    top = TITLE_HEIGHT + 22
    width = left + columns * cell + 16
    height = top + rows * cell + LEGEND_HEIGHT
    return Layout(rows, columns, cell, left, top, max(width, 560), height)


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def plate_map_png(
    wells: Sequence[WellValue],
    *,
    title: str,
    metric: str,
    plate_shape: tuple[int, int] | None = None,
    minimum_wells: int = 384,
) -> bytes:
    """PNG bytes of the plate map; `plate_shape` (rows, columns) or None: the smallest standard
    format of at least `minimum_wells` that holds the wells."""
    rows, columns = plate_shape or plate_format((w.well for w in wells), minimum_wells)
    geometry = layout(rows, columns)
    image = Image.new("RGB", (geometry.width, geometry.height), BACKGROUND)
    draw = ImageDraw.Draw(image)
    small, heading = _font(12), _font(17)
    values = [w.value for w in wells if w.value is not None]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    span = high - low

    draw.text((geometry.left, 6), title, fill=TEXT, font=heading)
    draw.text((geometry.left, 28), f"{metric}: median of each well's sites", fill=TEXT, font=small)
    for column in range(columns):
        if geometry.cell >= 24 or column % 2 == 0:
            x, _ = geometry.cell_centre(0, column)
            draw.text((x, geometry.top - 4), str(column + 1), fill=TEXT, font=small, anchor="md")
    for row in range(rows):
        _, y = geometry.cell_centre(row, 0)
        draw.text((geometry.left - 6, y), row_name(row), fill=TEXT, font=small, anchor="rm")
        for column in range(columns):
            draw.rectangle(geometry.cell_box(row, column), fill=NOT_IMAGED, outline=BACKGROUND)

    for well in wells:
        row, column = parse_well(well.well)
        if row >= rows or column >= columns:
            raise ValueError(f"well {well.well} is outside a {rows}x{columns} plate")
        box = geometry.cell_box(row, column)
        if well.value is None:
            fill = NO_VALUE
        else:
            fill = colour((well.value - low) / span if span > 0 else 0.5)
        draw.rectangle(box, fill=fill, outline=BACKGROUND)
        if well.flagged:
            frame = max(2, geometry.cell // 10)
            draw.rectangle(box, outline=FLAGGED, width=frame)
        mark = ROLE_MARKS.get(well.control_role or "")
        if mark:
            luminance = 0.299 * fill[0] + 0.587 * fill[1] + 0.114 * fill[2]
            ink = (0, 0, 0) if luminance > 140 else (255, 255, 255)
            _mark(draw, geometry.cell_centre(row, column), mark, geometry.cell, ink)

    _legend(draw, geometry, low, high, bool(values), small)
    sink = io.BytesIO()
    info = PngImagePlugin.PngInfo()
    info.add_text("plate_format", f"{rows}x{columns}")
    info.add_text("metric", metric)
    image.save(sink, format="PNG", pnginfo=info, optimize=True)
    return sink.getvalue()


def _mark(
    draw: ImageDraw.ImageDraw, centre: tuple[int, int], mark: str, cell: int, ink: tuple
) -> None:
    """A plus or a minus centred on a cell, as strokes a third of the cell long."""
    x, y = centre
    half, width = max(3, cell // 5), max(2, cell // 12)
    draw.line([(x - half, y), (x + half, y)], fill=ink, width=width)
    if mark == "+":
        draw.line([(x, y - half), (x, y + half)], fill=ink, width=width)


def _legend(
    draw: ImageDraw.ImageDraw,
    geometry: Layout,
    low: float,
    high: float,
    has_values: bool,
    font: ImageFont.ImageFont,
) -> None:
    y = geometry.top + geometry.rows * geometry.cell + 14
    x = geometry.left
    bar = 180
    for offset in range(bar):
        draw.line([(x + offset, y), (x + offset, y + 12)], fill=colour(offset / (bar - 1)))
    if has_values:
        draw.text((x, y + 16), f"{low:.4g}", fill=TEXT, font=font)
        draw.text((x + bar, y + 16), f"{high:.4g}", fill=TEXT, font=font, anchor="ra")
    x += bar + 18
    items = [
        (FLAGGED, "QC-flagged site(s)", True),
        (NOT_IMAGED, "not imaged", False),
        (NO_VALUE, "no value", False),
    ]
    for fill, text, frame_only in items:
        if frame_only:
            draw.rectangle([x, y, x + 12, y + 12], outline=fill, width=2)
        else:
            draw.rectangle([x, y, x + 12, y + 12], fill=fill)
        draw.text((x + 17, y - 1), text, fill=TEXT, font=font)
        x += 17 + int(draw.textlength(text, font=font)) + 14
    x, y = geometry.left, y + 40
    for mark, text in (("+", "positive control"), ("-", "negative control")):
        _mark(draw, (x + 6, y + 7), mark, 30, TEXT)
        draw.text((x + 17, y - 1), text, fill=TEXT, font=font)
        x += 17 + int(draw.textlength(text, font=font)) + 18


def plate_map(
    sites: dict[str, Sequence],
    column: str,
    *,
    title: str,
    flagged: Iterable[str] = (),
    plate_shape: tuple[int, int] | None = None,
    minimum_wells: int = 384,
) -> bytes:
    """The plate map of one plate's sites: `sites` maps "site_key", "well", "control_role" and
    `column` to per-site sequences (e.g. a pyarrow table's `to_pydict()`); `flagged` the site
    keys QC flagged. The plate is drawn as the smallest standard format of at least
    `minimum_wells` (default 384, JUMP's plates) that holds every well."""
    bad = set(flagged)
    entries = well_values(
        sites["well"],
        sites[column],
        sites["control_role"],
        [key in bad for key in sites["site_key"]],
    )
    return plate_map_png(
        entries, title=title, metric=column, plate_shape=plate_shape, minimum_wells=minimum_wells
    )


__all__ = [
    "FORMATS",
    "Layout",
    "WellValue",
    "layout",
    "parse_well",
    "plate_format",
    "plate_map",
    "plate_map_png",
    "well_values",
]
