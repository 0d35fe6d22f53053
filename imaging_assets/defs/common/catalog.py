"""What the Dagster catalog shows for every table: typed columns with descriptions, row counts,
and the tags and owners that make assets filterable.

Column descriptions come from one place so that the provenance columns read the same on every
table; per-channel columns are described by their suffix (`dna_raw_md5` -> `_raw_md5`).
"""

from __future__ import annotations

from collections.abc import Iterable

import pyarrow as pa
from dagster import AssetCheckResult, TableColumn, TableSchema

OWNERS = ["team:imaging"]

COLUMNS = {
    "source": "JUMP data-generating centre (Metadata_Source), e.g. source_4",
    "batch": "acquisition batch (Metadata_Batch)",
    "plate": "plate barcode (Metadata_Plate)",
    "well": "well name, e.g. A01",
    "site": "field of view within the well, as the load data numbers it",
    "site_key": "`source__plate__well__site`: joins images, profiles and crops",
    "well_key": "`source__plate__well`",
    "cell_id": "`site_key__object number`: one cell, stable across re-runs",
    "jcp2022": "JUMP perturbation id (Metadata_JCP2022)",
    "control_role": "trt, poscon, negcon or empty (from perturbation_control.csv)",
    "recipe_name": "processing recipe that made the pixels",
    "recipe_version": "version of that recipe",
    "recipe_params": "the recipe's parameters (JSON)",
    "package_version": "imaging_assets version that wrote the row",
    "dagster_run_id": "Dagster run that wrote the row (also in the Lance commit's properties)",
    "written_at": "when the row was written (UTC)",
    "uri": "canonical URI of the raw object, as the load data names it",
    "read_uri": "where the raw object was actually read (a mirror, the bucket, a test server)",
    "error_kind": "missing, unreadable, empty, corrupt, page, wrong_size, wrong_dtype, non_finite",
    "qc_metric_set": "definitions of the ImageQuality_ columns: cellprofiler.MeasureImageQuality/1",
    "qc_scale": "divisor of raw intensities in the ImageQuality_ columns (65535 for uint16)",
    "qc_pass": "false when a per-plate outlier rule flagged the site (reasons in qc_reasons)",
    "qc_reasons": "why the site was flagged, e.g. 'DNA PowerLogLogSlope below plate median - 3 MAD'",
}

SUFFIXES = {
    "_pixels": "processed pixels of the channel, lossless, in the codec named by `_codec`",
    "_codec": "codec of `_pixels` (provenance): pzstd/1 (predictor + zstd), zstd/1 or raw/1; null: raw",
    "_shape": "shape (height, width) of the processed pixels",
    "_dtype": "numpy dtype of the processed pixels",
    "_raw_uri": "canonical URI of the raw image, as the load data names it (provenance)",
    "_read_uri": "where the raw image was actually read (provenance)",
    "_raw_size": "size of the raw object in bytes (provenance)",
    "_raw_md5": "md5 of the raw bytes; equals CellProfiler's Image_MD5Digest (provenance)",
    "_raw_sha256": "sha256 of the raw bytes (provenance)",
    "_raw_etag": "ETag the store reported for the raw object, if any (provenance)",
    "_raw_shape": "shape of the raw image before the recipe (provenance)",
    "_crop_offset": "(y, x) of the processed pixels within the raw image",
    "_low": "raw intensity that maps to 0 (to map a pixel back to raw)",
    "_high": "raw intensity that maps to the top of the range",
    "_illum_uri": "illumination function used, if any (provenance)",
    "_crop": "crop of the channel centred on the cell: raw row-major bytes",
}


def describe(name: str) -> str | None:
    if name in COLUMNS:
        return COLUMNS[name]
    for suffix, text in SUFFIXES.items():
        if name.endswith(suffix):
            return text
    if name.startswith("Metadata_"):
        return "metadata column as in the source table"
    if name.startswith("ImageQuality_"):
        return (
            "CellProfiler MeasureImageQuality feature of the raw image, named as CellProfiler "
            "names it (null: not measured; see qc_metric_set)"
        )
    return None


def column_schema(schema: pa.Schema) -> TableSchema:
    """The Arrow schema as Dagster's column schema, provenance columns described."""
    return TableSchema(columns=[TableColumn(f.name, str(f.type), describe(f.name)) for f in schema])


def table_catalog(schema: pa.Schema, rows: int) -> dict:
    """`dagster/column_schema` and `dagster/row_count` for a materialization."""
    return {"dagster/column_schema": column_schema(schema), "dagster/row_count": rows}


def tags(domain: str, storage: str, modality: str = "cell-painting") -> dict[str, str]:
    """Catalog tags: filter assets by domain, modality and where their output lives."""
    return {"domain": domain, "modality": modality, "storage": storage}


def for_partition(checks: Iterable[AssetCheckResult], partition_key: str) -> list[AssetCheckResult]:
    """Check results that name the partition they judged (partitioned checks are a preview
    feature in Dagster 1.13, so the partition goes into the result's metadata)."""
    return [
        check._replace(metadata={**check.metadata, "partition": partition_key}) for check in checks
    ]


def markdown_table(rows: list[dict], columns: list[str], limit: int = 50) -> str:
    """A markdown table for metadata (the UI renders it), cut at `limit` rows."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(r[c]) for c in columns) + " |" for r in rows[:limit]]
    if len(rows) > limit:
        lines.append(f"| ... {len(rows) - limit} more |" + " |" * (len(columns) - 1))
    return "\n".join(lines)
