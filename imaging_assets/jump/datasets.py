"""The Lance datasets of the plate pipeline: their names and how one plate's rows are selected."""

from __future__ import annotations

from imaging_assets.core.lance_tables import quote
from imaging_assets.core.partition_write import Partition
from imaging_assets.core.provenance import DERIVED, FAILURES, RAW, REFERENCE
from imaging_assets.jump.keys import parse_plate_partition_key
from imaging_assets.jump.schemas import failed_images_schema

SITE_IMAGES = "site_images"
FAILED_IMAGES = "failed_images"
WELL_PROFILES = "well_profiles"
CELL_PROFILES = "cell_profiles"
CELL_CROPS = "cell_crops"
FEATURE_SETS = "feature_sets"  # the ordered feature names of each profiles' feature set
SITE_QC = "site_qc"  # the per-plate QC verdict of each site (jump/quality.py)

TABLES = {  # the kind of each table (core/provenance.py): what provenance its rows carry
    SITE_IMAGES: RAW,
    FAILED_IMAGES: FAILURES,
    WELL_PROFILES: RAW,
    CELL_PROFILES: RAW,
    CELL_CROPS: DERIVED,
    FEATURE_SETS: REFERENCE,
    SITE_QC: DERIVED,
}
FAILURES_SCHEMA = failed_images_schema()

ROW_KEYS = {
    SITE_IMAGES: "site_key",
    FAILED_IMAGES: "failure_key",
    WELL_PROFILES: "well_key",
    CELL_PROFILES: "cell_id",
    CELL_CROPS: "cell_id",
    SITE_QC: "site_key",
}


def partition_filter_for(source: str, plate: str) -> str:
    """The Lance filter of one plate's rows."""
    return f"source = {quote(source)} AND plate = {quote(plate)}"


def plate_filter(partition_key: str) -> str:
    """The Lance filter of one plate's rows (`<source>__<plate>`)."""
    return partition_filter_for(*parse_plate_partition_key(partition_key))


def plate_partition(dataset: str, partition_key: str) -> Partition:
    """One plate of one of the plate datasets, as the partition-write protocol takes it."""
    return Partition(
        dataset=dataset,
        key=partition_key,
        filter=plate_filter(partition_key),
        row_key=ROW_KEYS[dataset],
        noun="plate",
    )
