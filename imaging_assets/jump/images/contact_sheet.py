"""A contact sheet of a plate for the Dagster UI: sites across wells and control roles side by side.

One column per site, grouped by control role (poscon, negcon, trt, then any other role), each from
a different well where the plate allows; one row per channel. Each column is headed by its role,
well and site (and "QC flagged" when image QC flagged it), each row by its channel, in a font
large enough to read in the UI (PIL's bundled scalable font; no font files needed).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence

import numpy as np
import pyarrow as pa
from PIL import Image, ImageDraw, ImageFont

from imaging_assets.jump.schemas import channel_prefix
from imaging_assets.processing.codecs import decode

ROLE_ORDER = ("poscon", "negcon", "trt")
FONT_SIZE = 15
LINE_HEIGHT = 19
LABEL_HEIGHT = 2 * LINE_HEIGHT + 6  # px of the black band over each site's column (two lines)
CHANNEL_LABEL_WIDTH = 96  # px of the band left of each channel's row
GAP = 3  # px between sites
ROLE_GAP = 12  # px between role groups
LABEL_COLOR = 255
MIN_COLUMN_WIDTH = 128  # px: a header ("negcon (flagged)") fits


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


def font(size: int = FONT_SIZE) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def labelled(tile: np.ndarray, text: str) -> np.ndarray:
    """The tile under a black band that names it in white (one line of text)."""
    band = Image.new("L", (tile.shape[1], LINE_HEIGHT + 4), 0)
    ImageDraw.Draw(band).text((4, 2), text, fill=LABEL_COLOR, font=font())
    return np.concatenate([np.asarray(band), tile], axis=0)


def _role_rank(role: str | None) -> tuple[int, str]:
    role = role or "unknown"
    return (ROLE_ORDER.index(role), role) if role in ROLE_ORDER else (len(ROLE_ORDER), role)


def choose_sites(
    site_keys: Sequence[str],
    wells: Sequence[str],
    roles: Sequence[str | None],
    n_sites: int,
    flagged: Iterable[str] = (),
) -> list[str]:
    """Up to n_sites site keys spread over control roles and wells, deterministically.

    Roles take turns (poscon, negcon, trt, then others), so every role the plate has is shown
    before any shows a second site; within a role, sites of wells not yet shown come first, then
    in site_key order; sites QC flagged come last (the sheet shows what the plate looks like).
    The result is ordered by role, then site_key."""
    bad = set(flagged)
    by_role: dict[str, list[tuple[str, str]]] = {}
    for key, well, role in sorted(zip(site_keys, wells, roles, strict=True), key=lambda r: r[0]):
        by_role.setdefault(role or "unknown", []).append((key, well))
    queues = {}
    for role, members in by_role.items():
        seen: set[str] = set()
        first, rest = [], []
        for key, well in sorted(members, key=lambda m: (m[0] in bad, m[0])):
            (rest if well in seen else first).append(key)
            seen.add(well)
        queues[role] = first + rest
    chosen: list[str] = []
    order = sorted(queues, key=_role_rank)
    while len(chosen) < n_sites and any(queues.values()):
        for role in order:
            if queues[role] and len(chosen) < n_sites:
                chosen.append(queues[role].pop(0))
    role_of = dict(zip(site_keys, roles, strict=True))
    return sorted(chosen, key=lambda key: (_role_rank(role_of[key]), key))


def _fit(array: np.ndarray, tile: int) -> np.ndarray:
    """The channel about `tile` px on its longer side (every n-th pixel; small images as they
    are, centred on a MIN_COLUMN_WIDTH-wide black tile), as uint8."""
    step = max(1, int(np.ceil(max(array.shape) / tile)))
    image = to_uint8(array[::step, ::step])
    if image.shape[1] >= MIN_COLUMN_WIDTH:
        return image
    left = (MIN_COLUMN_WIDTH - image.shape[1]) // 2
    return np.pad(image, ((0, 0), (left, MIN_COLUMN_WIDTH - image.shape[1] - left)))


def _text_band(width: int, height: int, lines: list[str]) -> np.ndarray:
    band = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(band)
    for index, text in enumerate(lines):
        draw.text((4, 3 + index * LINE_HEIGHT), text, fill=LABEL_COLOR, font=font())
    return np.asarray(band)


def contact_sheet(
    table: pa.Table,
    channels: list[str],
    n_sites: int = 6,
    tile: int = 128,
    flagged: Iterable[str] = (),
) -> bytes:
    """PNG bytes: up to n_sites of the table's sites (chosen across roles and wells), one column
    each, one row per channel, every tile about `tile` px; columns headed by role, well and site,
    rows by channel."""
    bad = set(flagged)
    rows = table.to_pylist()
    keys = [r["site_key"] for r in rows]
    chosen = choose_sites(
        keys,
        [str(r.get("well") or "") for r in rows],
        [r.get("control_role") for r in rows],
        n_sites,
        bad,
    )
    by_key = {r["site_key"]: r for r in rows}
    if not chosen or not channels:
        return _png(np.zeros((LABEL_HEIGHT, CHANNEL_LABEL_WIDTH), dtype=np.uint8))
    grids = [[_fit(site_array(by_key[k], c), tile) for c in channels] for k in chosen]
    height = min(t.shape[0] for column in grids for t in column)
    width = min(t.shape[1] for column in grids for t in column)
    width = max(width, MIN_COLUMN_WIDTH)
    corner = np.zeros((LABEL_HEIGHT, CHANNEL_LABEL_WIDTH), np.uint8)
    pieces = [np.concatenate([corner, *(_channel_label(c, height) for c in channels)], axis=0)]
    previous_role = None
    for key, column in zip(chosen, grids, strict=True):
        row = by_key[key]
        role = row.get("control_role") or "unknown"
        gap = ROLE_GAP if previous_role is not None and role != previous_role else GAP
        previous_role = role
        header = [
            role + (" (flagged)" if key in bad else ""),
            f"{row.get('well')}  site {row.get('site')}",
        ]
        stack = [_text_band(width, LABEL_HEIGHT, header)]
        stack += [t[:height, :width] for t in column]
        pieces.append(np.zeros((LABEL_HEIGHT + height * len(channels), gap), np.uint8))
        pieces.append(np.concatenate(stack, axis=0))
    return _png(np.concatenate(pieces, axis=1))


def _channel_label(channel: str, height: int) -> np.ndarray:
    band = Image.new("L", (CHANNEL_LABEL_WIDTH, height), 0)
    ImageDraw.Draw(band).text(
        (CHANNEL_LABEL_WIDTH - 8, height // 2), channel, fill=LABEL_COLOR, font=font(), anchor="rm"
    )
    return np.asarray(band)


def _png(pixels: np.ndarray) -> bytes:
    sink = io.BytesIO()
    Image.fromarray(pixels).save(sink, format="PNG", optimize=True)
    return sink.getvalue()
