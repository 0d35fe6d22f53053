"""The ingest manifest (CSV or Parquet): one row per dataset to register.

Columns (required: dataset_id, file, upload_type; the others may be absent or empty):

    dataset_id    <PROJECT>-YYYY-MM-DD-HH-MM-SS-<NNNN>
    file          a file or folder: a key under the source root, an absolute path or an s3:// URI
    description   free text (searchable by substring)
    parent_id     the dataset this one was derived from (must be registered or in the manifest)
    positions     for a multi-file OME-TIFF set: the files of positions 0, 1, ... separated by ';'
                  (names relative to `file`, which is then their folder)
    microscope    free text (e.g. Nikon-Ti2)
    upload_type   `frames` (split into 2-D frames) or `file` (stored as is, with size and sha256)
    format        for frames: auto, ome-tiff, ndtiff, micromanager, tiff-folder or tiff;
                  for files: free text

Every problem is an InputError naming the manifest, the column, the 1-based data row and what was
expected. Validation is all-or-nothing: a manifest with one bad row registers nothing.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

from imaging_assets.core.errors import InputError
from imaging_assets.frames.ids import DatasetId, parse_dataset_id
from imaging_assets.frames.schema import MANIFEST_COLUMNS, UPLOAD_TYPES

REQUIRED_COLUMNS = ("dataset_id", "file", "upload_type")
FRAME_FORMATS = ("auto", "ome-tiff", "ndtiff", "micromanager", "tiff-folder", "tiff")
PARQUET_MAGIC = b"PAR1"


@dataclass(frozen=True)
class ManifestEntry:
    row: int
    dataset: DatasetId
    file: str
    description: str = ""
    parent_id: str | None = None
    positions: tuple[str, ...] = ()
    microscope: str = ""
    upload_type: str = "frames"
    format: str = "auto"

    @property
    def dataset_id(self) -> str:
        return self.dataset.text

    def content(self) -> dict:
        """What must be identical for an id registered twice."""
        return {
            "dataset_id": self.dataset_id,
            "file": self.file,
            "description": self.description,
            "parent_id": self.parent_id,
            "positions": list(self.positions),
            "microscope": self.microscope,
            "upload_type": self.upload_type,
            "format": self.format,
        }

    def content_sha256(self) -> str:
        text = json.dumps(self.content(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Manifest:
    file: str
    entries: tuple[ManifestEntry, ...]
    new: tuple[ManifestEntry, ...] = field(default=())  # not registered before

    def ids(self) -> list[str]:
        return [e.dataset_id for e in self.entries]


def read_rows(data: bytes, file: str) -> list[dict[str, str | None]]:
    """The manifest's rows as dicts of text (CSV by content, or Parquet by its magic number)."""
    if data[:4] == PARQUET_MAGIC:
        try:
            table = pq.read_table(io.BytesIO(data))
        except (pa.ArrowInvalid, OSError) as error:
            raise InputError(file, f"not a readable Parquet file ({error})") from error
        rows = []
        for record in table.to_pylist():
            rows.append({k: (None if v is None else str(v)) for k, v in record.items()})
        _check_columns(table.column_names, file)
        return rows
    if not data.strip():
        raise InputError(file, "the manifest is empty", expected="a CSV header and rows")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputError(
            file, f"not UTF-8 text (byte {error.start + 1})", expected="a UTF-8 CSV"
        ) from error
    reader = csv.DictReader(io.StringIO(text))
    _check_columns([n.strip() for n in reader.fieldnames or []], file)
    rows = []
    for number, record in enumerate(reader, start=1):
        if None in record:
            raise InputError(
                file,
                f"row has {len(reader.fieldnames or []) + len(record[None])} fields",
                row=number,
                expected=f"{len(reader.fieldnames or [])} fields as in the header",
            )
        rows.append({k.strip(): v for k, v in record.items()})
    return rows


def _check_columns(names: list[str], file: str) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if missing:
        raise InputError(
            file,
            f"missing column(s) {', '.join(missing)}",
            expected=f"columns {', '.join(MANIFEST_COLUMNS)}",
        )
    unknown = [c for c in names if c not in MANIFEST_COLUMNS]
    if unknown:
        raise InputError(
            file,
            f"unknown column(s) {', '.join(unknown)}",
            column=unknown[0],
            expected=f"only {', '.join(MANIFEST_COLUMNS)}",
        )


def _text(record: Mapping[str, str | None], column: str) -> str:
    value = record.get(column)
    return "" if value is None else str(value).strip()


def parse_entry(record: Mapping[str, str | None], row: int, file: str) -> ManifestEntry:
    dataset = parse_dataset_id(record.get("dataset_id"), file=file, column="dataset_id", row=row)
    location = _text(record, "file")
    if not location:
        raise InputError(
            file, "no file or folder given", column="file", row=row, expected="a path or URI"
        )
    upload_type = _text(record, "upload_type").lower()
    if upload_type not in UPLOAD_TYPES:
        raise InputError(
            file,
            f"unknown upload type {record.get('upload_type')!r}",
            column="upload_type",
            row=row,
            expected=" or ".join(UPLOAD_TYPES),
        )
    fmt = _text(record, "format").lower() or ("auto" if upload_type == "frames" else "")
    if upload_type == "frames" and fmt not in FRAME_FORMATS:
        raise InputError(
            file,
            f"unknown frames format {record.get('format')!r}",
            column="format",
            row=row,
            expected=", ".join(FRAME_FORMATS),
        )
    positions = tuple(p.strip() for p in _text(record, "positions").split(";") if p.strip())
    if positions and (upload_type != "frames" or fmt not in ("auto", "ome-tiff")):
        raise InputError(
            file,
            "positions are only for multi-file OME-TIFF sets of upload type frames",
            column="positions",
            row=row,
            expected="empty, or upload_type frames with format ome-tiff",
        )
    if len(set(positions)) != len(positions):
        raise InputError(file, "a file is listed twice in positions", column="positions", row=row)
    parent_text = _text(record, "parent_id")
    parent = None
    if parent_text:
        parent = parse_dataset_id(parent_text, file=file, column="parent_id", row=row).text
        if parent == dataset.text:
            raise InputError(
                file, f"dataset {parent} is its own parent", column="parent_id", row=row
            )
    return ManifestEntry(
        row=row,
        dataset=dataset,
        file=location,
        description=_text(record, "description"),
        parent_id=parent,
        positions=positions,
        microscope=_text(record, "microscope"),
        upload_type=upload_type,
        format=fmt,
    )


def parse_manifest(data: bytes, file: str, registered: Mapping[str, str] | None = None) -> Manifest:
    """Parse and validate the manifest against the registered datasets (id -> content sha256).

    An id twice in the manifest with the same content counts once; with different content, or
    different from what is registered, it is an error. A parent must be registered or in the
    manifest.
    """
    registered = dict(registered or {})
    entries: dict[str, ManifestEntry] = {}
    for row, record in enumerate(read_rows(data, file), start=1):
        entry = parse_entry(record, row, file)
        earlier = entries.get(entry.dataset_id)
        if earlier is not None:
            if earlier.content_sha256() != entry.content_sha256():
                raise InputError(
                    file,
                    f"dataset {entry.dataset_id} appears in rows {earlier.row} and {row} with "
                    f"different content ({_differences(earlier.content(), entry.content())})",
                    column="dataset_id",
                    row=row,
                    expected="one row per dataset id",
                )
            continue
        known = registered.get(entry.dataset_id)
        if known is not None and known != entry.content_sha256():
            raise InputError(
                file,
                f"dataset {entry.dataset_id} is already registered with different content; "
                "an id may not be reused (give the new acquisition a new serial)",
                column="dataset_id",
                row=row,
                expected="the registered content or a new id",
            )
        entries[entry.dataset_id] = entry
    for entry in entries.values():
        if entry.parent_id and entry.parent_id not in entries and entry.parent_id not in registered:
            raise InputError(
                file,
                f"parent dataset {entry.parent_id} of {entry.dataset_id} is neither registered "
                "nor in the manifest",
                column="parent_id",
                row=entry.row,
                expected="a registered dataset id",
            )
    ordered = tuple(entries.values())
    return Manifest(
        file=file,
        entries=ordered,
        new=tuple(e for e in ordered if e.dataset_id not in registered),
    )


def _differences(a: dict, b: dict) -> str:
    keys = [k for k in a if a[k] != b.get(k)]
    return ", ".join(f"{k}: {a[k]!r} vs {b.get(k)!r}" for k in keys[:4])


def manifest_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
