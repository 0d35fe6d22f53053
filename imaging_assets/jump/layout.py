"""Where things live under a Cell Painting Gallery source root (cpg0016-jump layout).

Every key is relative to the source root (e.g. ``s3://cellpainting-gallery/cpg0016-jump`` or a
local mirror). The sample generator, the plate index, the sensor and the profile readers all
build keys here, so the layout is written down once.
"""

from __future__ import annotations

import os

LOAD_DATA_DIR = "workspace/load_data_csv"
LOAD_DATA_ORIG_DIR = "workspace/load_data_csv_orig"
LOAD_DATA_FILE = "load_data.csv"
LOAD_DATA_WITH_ILLUM_FILE = "load_data_with_illum.csv"
LOAD_DATA_ORIG_FILE = "load_data_with_illum.parquet"


def load_data_batches_prefix(source: str) -> str:
    """Prefix whose delimiter listing yields one common prefix per batch."""
    return f"{source}/{LOAD_DATA_DIR}/"


def load_data_plates_prefix(source: str, batch: str) -> str:
    """Prefix whose delimiter listing yields one common prefix per plate of a batch."""
    return f"{source}/{LOAD_DATA_DIR}/{batch}/"


def load_data_csv_key(source: str, batch: str, plate: str, with_illum: bool = True) -> str:
    """The current (URL_ columns) load_data CSV of a plate."""
    name = LOAD_DATA_WITH_ILLUM_FILE if with_illum else LOAD_DATA_FILE
    return f"{source}/{LOAD_DATA_DIR}/{batch}/{plate}/{name}"


def load_data_orig_prefix(source: str, batch: str, plate: str) -> str:
    """Folder of the older (FileName_/PathName_ columns) load_data parquet of a plate."""
    return f"{source}/{LOAD_DATA_ORIG_DIR}/{batch}/{plate}/"


def load_data_orig_key(source: str, batch: str, plate: str) -> str:
    return load_data_orig_prefix(source, batch, plate) + LOAD_DATA_ORIG_FILE


def images_prefix(source: str, batch: str) -> str:
    return f"{source}/images/{batch}/images/"


def illum_key(source: str, batch: str, plate: str, channel: str) -> str:
    """Illumination correction function of one channel of a plate (.npy)."""
    return f"{source}/images/{batch}/illum/{plate}/{plate}_Illum{channel}.npy"


def well_profiles_key(source: str, batch: str, plate: str) -> str:
    """CellProfiler per-well profiles of a plate (parquet)."""
    return f"{source}/workspace/profiles/{batch}/{plate}/{plate}.parquet"


def backend_sqlite_key(source: str, batch: str, plate: str) -> str:
    """CellProfiler single-cell backend of a plate (SQLite)."""
    return f"{source}/workspace/backend/{batch}/{plate}/{plate}.sqlite"


def backend_csv_prefix(source: str, batch: str, plate: str) -> str:
    """Folder of CellProfiler CSV exports (Image.csv, Cells.csv, Cytoplasm.csv, Nuclei.csv)."""
    return f"{source}/workspace/backend/{batch}/{plate}/"


CANONICAL_ROOTS: tuple[str, ...] = tuple(
    prefix.strip()
    for prefix in os.environ.get(
        "IMAGING_ASSETS_SOURCE_CANONICAL", "s3://cellpainting-gallery/"
    ).split(",")
    if prefix.strip()
)
"""Where the URIs in load_data files may point for the source root to mirror them: the Cell
Painting Gallery by default ($IMAGING_ASSETS_SOURCE_CANONICAL, comma-separated prefixes, for a
private collection's own bucket)."""


def rebase_to_source_key(uri: str, source: str) -> str | None:
    """The key under the source root of a URI written in a load_data file.

    load_data files name objects by absolute URI in the public bucket
    (``s3://cellpainting-gallery/cpg0016-jump/source_4/images/...``). Everything from
    ``<source>/`` on is the key under any mirror of that root, so the same load_data works against
    the bucket, a local copy or a test server. Returns None when the URI does not contain the
    source folder (a relative path, or a foreign location).
    """
    marker = f"/{source}/"
    normalized = uri.replace("\\", "/")
    index = normalized.find(marker)
    if index < 0:
        return None
    return normalized[index + 1 :]
