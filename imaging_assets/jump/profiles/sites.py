"""Each image's site key, well, site and metadata as text, checked before any cell is read.

Every image that has cells must name its well and site, both valid key parts, and must belong to
the plate being loaded; the error names the file, the image and the column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from imaging_assets.core.errors import InputError
from imaging_assets.jump.keys import KEY_PART_RULE, SEPARATOR, key_part_problem
from imaging_assets.jump.profiles.image_runs import Images
from imaging_assets.jump.profiles.layout import text_array
from imaging_assets.jump.profiles.plan import CellPlan


@dataclass(frozen=True)
class Sites:
    """Per image index: site key and the Image metadata as text (checked for images with cells)."""

    site_key: pa.Array
    well: pa.Array
    site: pa.Array
    number: np.ndarray
    metadata: dict[str, pa.Array]


def _site_text(value) -> str | None:
    if value in (None, ""):
        return None
    text = str(value)
    return text[:-2] if text.endswith(".0") else text


def image_sites(
    plan: CellPlan, images: Images, with_cells: list[int], keys: dict, file: str
) -> Sites:
    metadata = images.metadata
    n = len(images.numbers)
    wells = [
        None if v in (None, "") else str(v) for v in metadata.get("Image_Metadata_Well", [None] * n)
    ]
    sites = [_site_text(v) for v in metadata.get("Image_Metadata_Site", [None] * n)]
    for i in with_cells:
        if wells[i] is None or sites[i] is None:
            raise InputError(
                file,
                f"image {images.numbers[i]} has no well or site",
                column="Image_Metadata_Well / Image_Metadata_Site",
            )
    for column, values in (("Image_Metadata_Well", wells), ("Image_Metadata_Site", sites)):
        for i in with_cells:
            problem = key_part_problem(values[i])
            if problem is not None:
                raise InputError(
                    file,
                    f"image {images.numbers[i]}: a key part {problem}",
                    column=column,
                    expected=KEY_PART_RULE,
                    got=values[i],
                )
    plate_values = metadata.get("Image_Metadata_Plate", [None] * n)
    plates = {str(plate_values[i]) for i in with_cells if plate_values[i] not in (None, "")}
    if plates - {keys["plate"]}:
        raise InputError(
            file,
            "cells of another plate",
            column="Image_Metadata_Plate",
            expected=keys["plate"],
            got=sorted(plates),
        )
    prefix = f"{keys['source']}{SEPARATOR}{keys['plate']}{SEPARATOR}"
    site_keys = [
        None if w is None or s is None else f"{prefix}{w}{SEPARATOR}{s}"
        for w, s in zip(wells, sites, strict=True)
    ]
    return Sites(
        site_key=pa.array(site_keys, pa.string()),
        well=pa.array(wells, pa.string()),
        site=pa.array(sites, pa.string()),
        number=np.asarray(images.numbers, dtype=np.int64),
        metadata={name: text_array(metadata[name]) for _, name in plan.image_columns},
    )
