"""Arrow schemas of the frames domain's Lance tables and the scalar indexes that make queries push
down (BTREE on keys and time, BITMAP on low-cardinality columns, NGRAM on the description).

- `datasets`: one row per registered dataset (manifest fields, the id's parts, and, once ingested,
  the global metadata and the summary of its frames);
- `frames`: one row per 2-D frame, keyed by `frame_key` = `<dataset_id>__c<c>_z<z>_t<t>_p<p>`;
- `dataset_files`: one row per dataset of upload type `file`: where the object is kept, its size
  and sha256.
"""

from __future__ import annotations

from datetime import UTC, datetime

import lance
import pyarrow as pa

from imaging_assets.core.lance_tables import addable
from imaging_assets.core.provenance import FAILURES, RAW, REGISTRY
from imaging_assets.processing.quality import ImageQualityColumns

DATASETS = "datasets"
FRAMES = "frames"
DATASET_FILES = "dataset_files"

ZSTD_LEVEL_1 = {"lance-encoding:compression": "zstd", "lance-encoding:compression-level": "1"}
BLOB_THRESHOLD_BYTES = 4 * 1024 * 1024
"""Frames above this many bytes go to the blob column: a `large_binary` zstd value of >= 16 MB
alone in a batch is silently stored uncompressed (measured), and blobs read without copying."""

UPLOAD_TYPES = ("file", "frames")
FRAME_KEY_COLUMNS = ("dataset_id", "c", "z", "t", "p")

FRAME_QUALITY = ImageQualityColumns("Frame")
_TS = pa.timestamp("us")  # UTC, stored naive (as the tables were first written)


def now_utc() -> datetime:
    """Now in UTC, naive like the frames tables' timestamp columns."""
    return datetime.now(UTC).replace(tzinfo=None)


MANIFEST_COLUMNS = (
    "dataset_id",
    "file",
    "description",
    "parent_id",
    "positions",
    "microscope",
    "upload_type",
    "format",
)


def datasets_schema() -> pa.Schema:
    return pa.schema(
        [
            pa.field("dataset_id", pa.string(), nullable=False),
            pa.field("project", pa.string()),
            pa.field("acquired_at", _TS),
            pa.field("serial", pa.int32()),
            pa.field("microscope", pa.string()),
            pa.field("description", pa.string()),
            pa.field("parent_id", pa.string()),
            pa.field("upload_type", pa.string()),
            pa.field("format", pa.string()),
            pa.field("source_uri", pa.string()),
            pa.field("positions", pa.string()),
            pa.field("content_sha256", pa.string()),
            pa.field("registered_at", _TS),
            pa.field("registered_run_id", pa.string()),
            # filled by the `frames` asset once the dataset is ingested
            pa.field("ingested", pa.bool_()),
            pa.field("frames", pa.bool_()),
            pa.field("global_meta", pa.json_()),
            pa.field("summary", pa.json_()),
            pa.field("nbr_channels", pa.int32()),
            pa.field("nbr_slices", pa.int32()),
            pa.field("nbr_timepoints", pa.int32()),
            pa.field("nbr_positions", pa.int32()),
            pa.field("im_height", pa.int32()),
            pa.field("im_width", pa.int32()),
            pa.field("dtype", pa.string()),
            pa.field("channel_names", pa.list_(pa.string())),
            pa.field("frame_count", pa.int64()),
            pa.field("bytes", pa.int64()),
            pa.field("ingested_at", _TS),
            pa.field("ingested_run_id", pa.string()),
            # added later: older lakes gain them (null for datasets registered before)
            addable(pa.field("position_indices", pa.list_(pa.int32()))),
            addable(pa.field("package_version", pa.string())),
        ]
    )


def frames_schema() -> pa.Schema:
    return pa.schema(
        [
            pa.field("frame_key", pa.string(), nullable=False),
            pa.field("dataset_id", pa.string(), nullable=False),
            pa.field("c", pa.int32()),
            pa.field("z", pa.int32()),
            pa.field("t", pa.int32()),
            pa.field("p", pa.int32()),
            pa.field("channel_name", pa.string()),
            pa.field("height", pa.int32()),
            pa.field("width", pa.int32()),
            pa.field("dtype", pa.string()),
            pa.field("nbytes", pa.int64()),
            pa.field("sha256", pa.string()),
            pa.field("meta", pa.json_()),
            pa.field("source_uri", pa.string()),
            pa.field("pixels", pa.large_binary(), metadata=ZSTD_LEVEL_1),
            lance.blob_field("pixels_blob"),
            pa.field("dagster_run_id", pa.string()),
            # added later: older lakes gain them (null for frames written before)
            addable(pa.field("package_version", pa.string())),
            addable(pa.field("written_at", _TS)),
            addable(pa.field("read_uri", pa.string())),  # the file actually opened
            # CellProfiler's image-quality features of each frame (ImageQuality_FocusScore_Frame,
            # ..., qc_metric_set, qc_scale), as the slices of a z-stack and the sites of a plate
            *(addable(f) for f in FRAME_QUALITY.fields()),
        ]
    )


def dataset_files_schema() -> pa.Schema:
    return pa.schema(
        [
            pa.field("dataset_id", pa.string(), nullable=False),
            pa.field("source_uri", pa.string()),
            pa.field("stored_uri", pa.string()),
            pa.field("copied", pa.bool_()),
            pa.field("size", pa.int64()),
            pa.field("sha256", pa.string()),
            pa.field("etag", pa.string()),
            pa.field("dagster_run_id", pa.string()),
            pa.field("stored_at", _TS),
            addable(pa.field("package_version", pa.string())),  # added later (null before)
            addable(pa.field("read_uri", pa.string())),  # where it was read (added later)
        ]
    )


DATASET_FAILURES = "dataset_failures"
FAILURES_SCHEMA = pa.schema(
    [
        pa.field("failure_key", pa.string()),
        pa.field("dataset_id", pa.string()),
        pa.field("kind", pa.string()),  # the error's type: InputError, MissingObjectError, ...
        pa.field("detail", pa.string()),
        pa.field("source_uri", pa.string()),
        pa.field("read_uri", pa.string()),
        pa.field("package_version", pa.string()),
        pa.field("dagster_run_id", pa.string()),
        pa.field("written_at", _TS),
    ]
)


def frame_key(dataset_id: str, c: int, z: int, t: int, p: int) -> str:
    return f"{dataset_id}__c{c}_z{z}_t{t}_p{p}"


INDEXES: dict[str, list[tuple[str, str]]] = {
    DATASETS: [
        ("dataset_id", "BTREE"),
        ("acquired_at", "BTREE"),
        ("project", "BITMAP"),
        ("microscope", "BITMAP"),
        ("parent_id", "BTREE"),
        ("description", "NGRAM"),
    ],
    FRAMES: [
        ("frame_key", "BTREE"),
        ("dataset_id", "BTREE"),
        ("c", "BITMAP"),
        ("z", "BITMAP"),
        ("t", "BITMAP"),
        ("p", "BITMAP"),
    ],
    DATASET_FILES: [("dataset_id", "BTREE")],
}


TABLES = {  # the kind of each table (core/provenance.py): what provenance its rows carry
    DATASETS: REGISTRY,
    FRAMES: RAW,
    DATASET_FILES: RAW,
    DATASET_FAILURES: FAILURES,
}
