"""The plate map: well names to positions, the plate's format, and what the PNG shows where."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from imaging_assets.jump.images.plate_map import (
    FLAGGED,
    NO_VALUE,
    NOT_IMAGED,
    colour,
    layout,
    parse_well,
    plate_format,
    plate_map,
    well_values,
)


def test_wells_parse_to_rows_and_columns():
    assert parse_well("A01") == (0, 0)
    assert parse_well("P24") == (15, 23)
    assert parse_well("h7") == (7, 6)
    assert parse_well("AF48") == (31, 47)  # 1536-well plates name rows A..Z, AA..AF
    for bad in ("", "A", "01", "A00", "A-1"):
        with pytest.raises(ValueError):
            parse_well(bad)


def test_the_format_is_the_smallest_standard_plate_holding_every_well():
    assert plate_format(["A01", "H12"], minimum=96) == (8, 12)
    assert plate_format(["A01", "H12"]) == (8, 12)
    assert plate_format(["A01", "H12"], minimum=384) == (16, 24)
    assert plate_format(["A01", "I01"], minimum=96) == (16, 24)
    assert plate_format(["A01", "P25"]) == (32, 48)
    assert plate_format([], minimum=384) == (16, 24)
    with pytest.raises(ValueError, match="1536"):
        plate_format(["A49"])


def test_sites_reduce_to_one_value_per_well():
    entries = well_values(
        ["A02", "A01", "A01", "A01"],
        [1.0, 3.0, None, 5.0],
        ["poscon", "trt", "trt", "trt"],
        [False, False, True, False],
    )
    assert [(e.well, e.value, e.sites, e.flagged) for e in entries] == [
        ("A01", 4.0, 3, 1),
        ("A02", 1.0, 1, 0),
    ]
    assert entries[1].control_role == "poscon"


def _sites(wells: dict[str, tuple[float | None, str]], per_well: int = 2) -> dict[str, list]:
    sites = {"site_key": [], "well": [], "control_role": [], "m": []}
    for well, (value, role) in wells.items():
        for site in range(per_well):
            sites["site_key"].append(f"s__P__{well}__{site}")
            sites["well"].append(well)
            sites["control_role"].append(role)
            sites["m"].append(value)
    return sites


def _pixels(png: bytes) -> tuple[np.ndarray, dict]:
    image = Image.open(io.BytesIO(png))
    return np.asarray(image.convert("RGB")), image.text


def test_the_png_has_the_plates_shape_colours_frames_and_marks():
    sites = _sites(
        {
            "A01": (-2.0, "trt"),
            "B02": (-3.0, "poscon"),
            "C03": (-2.5, "negcon"),
            "P24": (None, "trt"),
        }
    )
    png = plate_map(sites, "m", title="s__P", flagged=["s__P__A01__1"])
    pixels, text = _pixels(png)
    assert text == {"plate_format": "16x24", "metric": "m"}
    geometry = layout(16, 24)
    assert pixels.shape == (geometry.height, geometry.width, 3)

    def centre(well: str) -> tuple[int, int, int]:
        x, y = geometry.cell_centre(*parse_well(well))
        return tuple(int(v) for v in pixels[y, x])

    def inside(well: str, dx: int, dy: int) -> tuple[int, int, int]:
        x0, y0, _, _ = geometry.cell_box(*parse_well(well))
        return tuple(int(v) for v in pixels[y0 + dy, x0 + dx])

    assert centre("D04") == NOT_IMAGED and centre("P23") == NOT_IMAGED
    assert inside("P24", 6, 6) == NO_VALUE
    assert inside("A01", 1, 1) == FLAGGED  # a flagged site: the well's red frame
    assert inside("A01", 6, 6) == colour(1.0)  # the highest value of the plate
    assert inside("B02", 1, 1) == colour(0.0)  # no frame: no flagged site; the lowest value
    assert inside("C03", 6, 6) == colour(0.5)
    for well in ("B02", "C03"):  # controls carry a mark (a stroke through the cell's centre)
        assert centre(well) != inside(well, 6, 6)
    assert centre("A01") == inside("A01", 6, 6)  # treatments do not


def test_96_and_1536_well_plates_keep_their_shape():
    small = plate_map(
        _sites({"A01": (1.0, "trt"), "H12": (2.0, "trt")}), "m", title="t", minimum_wells=96
    )
    pixels, text = _pixels(small)
    assert text["plate_format"] == "8x12"
    assert pixels.shape[:2] == (layout(8, 12).height, layout(8, 12).width)
    large = plate_map(_sites({"A01": (1.0, "trt"), "AF48": (2.0, "trt")}), "m", title="t")
    assert _pixels(large)[1]["plate_format"] == "32x48"
