"""CellProfiler-like outputs of the sample gallery: the single-cell SQLite and per-well profiles.

Objects are the cells really drawn in the images (same centres and sizes), features are measured
on the drawn pixels, and Image_MD5Digest_Orig{Ch} is the md5 of the TIFF bytes written, as in
CellProfiler's own output; so the provenance link from a profile row to a raw object is real.
"""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from imaging_assets.demo.gallery.cells import SiteLayout

COMPARTMENTS = ("Cells", "Cytoplasm", "Nuclei")


@dataclass
class SiteMeasurements:
    """What CellProfiler would record for one site."""

    source: str
    plate: str
    well: str
    site: int
    file_names: dict[str, str]  # channel -> TIFF file name
    path_names: dict[str, str]  # channel -> folder URI
    md5: dict[str, str]  # channel -> md5 of the TIFF bytes
    objects: dict[str, np.ndarray]  # column name -> (N,) values (without compartment prefix)


def measure_objects(
    layout: SiteLayout, images: dict[str, np.ndarray], rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Location, bounding box, shape and intensity features per cell, for every compartment."""
    n = len(layout.centers)
    columns: dict[str, np.ndarray] = {}
    for compartment, radius in (
        ("Nuclei", layout.nucleus_radius),
        ("Cells", layout.cell_radius),
        ("Cytoplasm", layout.cell_radius),
    ):
        boxes = layout.bounding_boxes(radius)
        columns[f"{compartment}_Location_Center_X"] = layout.centers[:, 0]
        columns[f"{compartment}_Location_Center_Y"] = layout.centers[:, 1]
        for index, name in enumerate(("Minimum_X", "Minimum_Y", "Maximum_X", "Maximum_Y")):
            columns[f"{compartment}_AreaShape_BoundingBox{name}"] = boxes[:, index].astype(float)
        area = np.pi * radius**2
        if compartment == "Cytoplasm":
            area = area - np.pi * layout.nucleus_radius**2
        columns[f"{compartment}_AreaShape_Area"] = area
        columns[f"{compartment}_AreaShape_Perimeter"] = 2 * np.pi * radius
        columns[f"{compartment}_AreaShape_Eccentricity"] = rng.uniform(0.1, 0.7, n)
        columns[f"{compartment}_AreaShape_Solidity"] = rng.uniform(0.85, 1.0, n)
        for channel, image in images.items():
            means = np.array(
                [
                    image[y0 : y1 + 1, x0 : x1 + 1].mean() / 65535.0
                    if x1 >= x0 and y1 >= y0
                    else 0.0
                    for x0, y0, x1, y1 in boxes
                ]
            )
            columns[f"{compartment}_Intensity_MeanIntensity_{channel}"] = means
        columns[f"{compartment}_Texture_Contrast_DNA_3_00_256"] = rng.gamma(2.0, 0.5, n)
    return columns


def _create_table(db: sqlite3.Connection, name: str, columns: Sequence[tuple[str, str]]) -> None:
    db.execute(f'CREATE TABLE "{name}" ({", ".join(f"{c!r} {t}" for c, t in columns)})')


def write_backend_sqlite(
    path: Path, sites: Iterable[SiteMeasurements], channels: Sequence[str]
) -> None:
    """Per_Image, Per_Cells, Per_Cytoplasm, Per_Nuclei with CellProfiler's column naming."""
    sites = list(sites)
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    db = sqlite3.connect(tmp)
    try:
        image_columns = [
            ("TableNumber", "INTEGER"),
            ("ImageNumber", "INTEGER"),
            ("Image_Metadata_Source", "TEXT"),
            ("Image_Metadata_Plate", "TEXT"),
            ("Image_Metadata_Well", "TEXT"),
            ("Image_Metadata_Site", "INTEGER"),
        ]
        for ch in channels:
            image_columns += [
                (f"Image_FileName_Orig{ch}", "TEXT"),
                (f"Image_PathName_Orig{ch}", "TEXT"),
                (f"Image_MD5Digest_Orig{ch}", "TEXT"),
            ]
        image_columns.append(("Image_Count_Cells", "INTEGER"))
        _create_table(db, "Per_Image", image_columns)
        feature_names = sorted(sites[0].objects) if sites else []
        for compartment in COMPARTMENTS:
            columns = [
                ("TableNumber", "INTEGER"),
                ("ImageNumber", "INTEGER"),
                ("ObjectNumber", "INTEGER"),
            ]
            if compartment == "Cells":
                columns.append(("Cells_Parent_Nuclei", "INTEGER"))
            if compartment == "Cytoplasm":
                columns += [
                    ("Cytoplasm_Parent_Cells", "INTEGER"),
                    ("Cytoplasm_Parent_Nuclei", "INTEGER"),
                ]
            columns += [(f, "REAL") for f in feature_names if f.startswith(compartment + "_")]
            _create_table(db, f"Per_{compartment}", columns)
        for number, site in enumerate(sites, start=1):
            count = len(next(iter(site.objects.values()))) if site.objects else 0
            row: list = [1, number, site.source, site.plate, site.well, site.site]
            for ch in channels:
                row += [site.file_names[ch], site.path_names[ch], site.md5[ch]]
            row.append(count)
            db.execute(f"INSERT INTO Per_Image VALUES ({', '.join('?' * len(row))})", row)
            for compartment in COMPARTMENTS:
                names = [f for f in feature_names if f.startswith(compartment + "_")]
                for obj in range(count):
                    values: list = [1, number, obj + 1]
                    if compartment == "Cells":
                        values.append(obj + 1)
                    if compartment == "Cytoplasm":
                        values += [obj + 1, obj + 1]
                    values += [float(site.objects[f][obj]) for f in names]
                    db.execute(
                        f"INSERT INTO Per_{compartment} VALUES ({', '.join('?' * len(values))})",
                        values,
                    )
        db.commit()
    finally:
        db.close()
    tmp.replace(path)


def well_profiles_table(sites: Iterable[SiteMeasurements], source: str, plate: str) -> pa.Table:
    """Per-well medians of the single-cell features, with CellProfiler/pycytominer names."""
    by_well: dict[str, dict[str, list[np.ndarray]]] = {}
    for site in sites:
        well = by_well.setdefault(site.well, {})
        for name, values in site.objects.items():
            if "Location" in name or "BoundingBox" in name:
                continue
            well.setdefault(name, []).append(values)
    wells = sorted(by_well)
    features = sorted({name for well in by_well.values() for name in well})
    columns: dict[str, list] = {
        "Metadata_Source": [source] * len(wells),
        "Metadata_Plate": [plate] * len(wells),
        "Metadata_Well": wells,
    }
    for name in features:
        columns[name] = [float(np.median(np.concatenate(by_well[w][name]))) for w in wells]
    return pa.table(columns)


def parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()
