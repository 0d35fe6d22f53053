"""The ingest manifest (CSV or Parquet): one row per dataset to register, in one of two formats.

This project's format (required: dataset_id, file, upload_type; the others may be absent or empty):

    dataset_id    <PROJECT>-YYYY-MM-DD-HH-MM-SS-<NNNN>
    file          a file or folder: a key under the source root, an absolute path or an s3:// URI
    description   free text (searchable by substring)
    parent_id     the dataset this one was derived from (registered, or another row of the manifest)
    positions     for a multi-file OME-TIFF set: the files of positions 0, 1, ... separated by ';'
                  (names relative to `file`, which is then their folder)
    microscope    free text (e.g. Nikon-Ti2)
    upload_type   `frames` (split into 2-D frames) or `file` (stored as is, with size and sha256)
    format        for frames: auto, ome-tiff, ndtiff, micromanager, tiff-folder or tiff;
                  for files: free text

imagingDB's `files_for_upload.csv` (github.com/czbiohub/imagingDB), recognised by its `file_name`
column (required: dataset_id, file_name), so that its users bring their manifests as they are:

    file_name          as `file`
    parent_dataset_id  as `parent_id`
    positions          the position indices to ingest of a multi-position acquisition, as imagingDB
                       reads them (JSON): `[0, 2]`, or `1` for one; empty or `[]`: every position
    upload_type        as here; absent or empty: frames (imagingDB took it from its config file)
    frames_format      ome_tiff / ome_tif -> ome-tiff, tiff -> auto, tif_folder -> tiff-folder,
                       tif_id -> tiff (this project's names too); absent or empty: auto
    description, microscope as here; meta_schema, schema_filename, filename_parser are accepted and
    ignored (imagingDB's own metadata checks), and so is the unnamed index column pandas writes.
    A cell pandas reads as missing (empty, None, nan, NA, null, ...) is empty, as in imagingDB.

Every row is checked, not just up to the first bad one: each problem is an InputError naming the
manifest, the column (as the manifest names it), the 1-based data row and what was expected. A row
registers whole or not at all, and a row whose parent is a bad row is bad too (it cannot register
without its parent). Whether bad rows stop the good ones is the caller's choice (`refusal`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace

import pyarrow as pa
import pyarrow.parquet as pq

from imaging_assets.core.errors import InputError
from imaging_assets.frames.ids import DatasetId, parse_dataset_id
from imaging_assets.frames.schema import MANIFEST_COLUMNS, UPLOAD_TYPES

REQUIRED_COLUMNS = ("dataset_id", "file", "upload_type")
FRAME_FORMATS = ("auto", "ome-tiff", "ndtiff", "micromanager", "tiff-folder", "tiff")
POSITION_INDEX_FORMATS = ("auto", "ome-tiff", "micromanager", "ndtiff")
"""Formats that hold several positions in one acquisition, so indices can select among them."""
IMAGINGDB_FORMATS = {
    "ome_tiff": "ome-tiff",
    "ome_tif": "ome-tiff",
    "tiff": "auto",  # imagingDB read it with its Micro-Manager OME-TIFF splitter: let content tell
    "tif_folder": "tiff-folder",
    "tif_id": "tiff",  # axes from the first page's ImageDescription
}
PANDAS_MISSING = frozenset(
    {"", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN"}
    | {"<NA>", "N/A", "NA", "NULL", "NaN", "None", "n/a", "nan", "null"}
)
"""What pandas.read_csv (which imagingDB reads its CSV with) takes for a missing value."""
PARQUET_MAGIC = b"PAR1"
MAX_POSITION_INDEX = 2**31 - 1
_PANDAS_INDEX = re.compile(r"(Unnamed: \d+)?")


@dataclass(frozen=True)
class Dialect:
    """How a manifest format names the columns and writes positions and missing values."""

    name: str
    columns: tuple[tuple[str, str], ...]  # (this project's name, the format's name)
    required: tuple[str, ...]  # this project's names
    ignored: tuple[str, ...] = ()
    missing: frozenset[str] = frozenset({""})
    position_indices: bool = False  # positions are indices, not file names
    default_upload_type: str = ""

    def column(self, name: str) -> str:
        """The format's name of one of this project's columns."""
        return dict(self.columns).get(name, name)

    def accepts(self, name: str) -> bool:
        known = {written for _, written in self.columns} | set(self.ignored)
        return name in known or (self.position_indices and bool(_PANDAS_INDEX.fullmatch(name)))

    def describe(self) -> str:
        required = [self.column(c) for c in self.required]
        optional = [w for c, w in self.columns if c not in self.required]
        return f"{self.name}: {', '.join(required)} (optional: {', '.join(optional)})"


NATIVE = Dialect("imaging_assets", tuple((c, c) for c in MANIFEST_COLUMNS), REQUIRED_COLUMNS)
IMAGINGDB = Dialect(
    "imagingDB",
    (
        ("dataset_id", "dataset_id"),
        ("file", "file_name"),
        ("description", "description"),
        ("parent_id", "parent_dataset_id"),
        ("positions", "positions"),
        ("microscope", "microscope"),
        ("upload_type", "upload_type"),
        ("format", "frames_format"),
    ),
    ("dataset_id", "file"),
    ignored=("meta_schema", "schema_filename", "filename_parser"),
    missing=PANDAS_MISSING,
    position_indices=True,
    default_upload_type="frames",
)


def dialect_of(names: Iterable[str]) -> Dialect:
    """imagingDB's format when the header has its `file_name` (and not our `file`)."""
    names = set(names)
    return IMAGINGDB if "file_name" in names and "file" not in names else NATIVE


@dataclass(frozen=True)
class ManifestEntry:
    row: int
    dataset: DatasetId
    file: str
    description: str = ""
    parent_id: str | None = None
    positions: tuple[str, ...] = ()  # file names of a multi-file OME-TIFF set
    microscope: str = ""
    upload_type: str = "frames"
    format: str = "auto"
    position_indices: tuple[int, ...] = ()  # the positions to ingest (imagingDB); () = all

    @property
    def dataset_id(self) -> str:
        return self.dataset.text

    def content(self) -> dict:
        """What must be identical for an id registered twice.

        `position_indices` only when given, so that datasets registered before it existed keep
        their content digest.
        """
        content = {
            "dataset_id": self.dataset_id,
            "file": self.file,
            "description": self.description,
            "parent_id": self.parent_id,
            "positions": list(self.positions),
            "microscope": self.microscope,
            "upload_type": self.upload_type,
            "format": self.format,
        }
        if self.position_indices:
            content["position_indices"] = list(self.position_indices)
        return content

    def content_sha256(self) -> str:
        text = json.dumps(self.content(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Manifest:
    file: str
    entries: tuple[ManifestEntry, ...]  # the good rows, one per dataset id
    new: tuple[ManifestEntry, ...] = field(default=())  # good and not registered before
    problems: tuple[InputError, ...] = ()  # every problem of every bad row, by row
    rows: int = 0
    dialect: Dialect = NATIVE
    ignored_columns: tuple[str, ...] = ()
    registered: frozenset[str] = frozenset()
    row_ids: tuple[tuple[int, str], ...] = ()  # (row, dataset id as written) of every row

    def ids(self) -> list[str]:
        return [e.dataset_id for e in self.entries]

    def bad_rows(self) -> list[int]:
        return sorted({p.row for p in self.problems if p.row is not None})

    def refuse(self, problems: Iterable[InputError]) -> Manifest:
        """This manifest with more bad rows, and so also the rows whose parent they are."""
        return _settle(self, self.entries, [*self.problems, *problems])


class ManifestRefusedError(InputError):
    """A manifest none of whose rows registers; names every bad row."""

    def __init__(self, file: str, problems: Iterable[InputError], reason: str) -> None:
        self.problems = tuple(problems)
        rows = sorted({p.row for p in self.problems if p.row is not None})
        listed = "".join(f"\n  - {p}" for p in self.problems)
        super().__init__(
            file,
            f"{len(rows)} bad row(s) (rows {', '.join(map(str, rows))}); {reason}, "
            f"nothing registered:{listed}",
        )


def refusal(manifest: Manifest, *, strict: bool) -> ManifestRefusedError | None:
    """Why nothing may register: with `strict` any bad row; otherwise only when no row is good."""
    if not manifest.problems:
        return None
    if strict:
        return ManifestRefusedError(manifest.file, manifest.problems, "strict")
    if not manifest.entries:
        return ManifestRefusedError(manifest.file, manifest.problems, "no good row")
    return None


# -- reading ---------------------------------------------------------------------------------------


def read_table(data: bytes, file: str) -> tuple[list[str], list[dict[str | None, str | None]]]:
    """(column names, rows as text) of a CSV (by content) or Parquet file (by its magic number).

    A CSV row with more fields than the header keeps the extra ones under the key None.
    """
    if data[:4] == PARQUET_MAGIC:
        try:
            table = pq.read_table(io.BytesIO(data))
        except (pa.ArrowInvalid, OSError) as error:
            raise InputError(file, f"not a readable Parquet file ({error})") from error
        rows = [
            {k: (None if v is None else str(v)) for k, v in record.items()}
            for record in table.to_pylist()
        ]
        return list(table.column_names), rows
    if not data.strip():
        raise InputError(file, "the manifest is empty", expected="a CSV header and rows")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputError(
            file, f"not UTF-8 text (byte {error.start + 1})", expected="a UTF-8 CSV"
        ) from error
    reader = csv.DictReader(io.StringIO(text))
    names = [n.strip() for n in reader.fieldnames or []]
    rows = [{(k if k is None else k.strip()): v for k, v in r.items()} for r in reader]
    return names, rows


def _check_columns(names: list[str], file: str, dialect: Dialect) -> None:
    missing = [dialect.column(c) for c in dialect.required if dialect.column(c) not in names]
    if missing:
        raise InputError(
            file,
            f"missing column(s) {', '.join(missing)}",
            expected=f"the columns of {NATIVE.describe()}; or of {IMAGINGDB.describe()}",
        )
    unknown = [c for c in names if not dialect.accepts(c)]
    if unknown:
        raise InputError(
            file,
            f"unknown column(s) {', '.join(unknown)} for the {dialect.name} format",
            column=unknown[0],
            expected=f"only the columns of {dialect.describe()}",
        )


def _text(record: Mapping[str, str | None], column: str, dialect: Dialect) -> str:
    value = record.get(column)
    text = "" if value is None else str(value).strip()
    return "" if text in dialect.missing else text


def _canonical(record: Mapping[str | None, str | None], dialect: Dialect) -> dict[str, str | None]:
    """The row keyed by this project's column names."""
    return {name: record.get(written) for name, written in dialect.columns}


# -- one row ---------------------------------------------------------------------------------------


@dataclass
class _Row:
    """Collects one row's problems, naming the columns as the manifest does."""

    file: str
    number: int
    dialect: Dialect
    problems: list[InputError] = field(default_factory=list)

    def fail(self, column: str, problem: str, expected: str | None = None) -> None:
        self.problems.append(
            InputError(
                self.file,
                problem,
                column=self.dialect.column(column),
                row=self.number,
                expected=expected,
            )
        )

    def dataset_id(self, value: object, column: str) -> DatasetId | None:
        try:
            return parse_dataset_id(
                value, file=self.file, column=self.dialect.column(column), row=self.number
            )
        except InputError as error:
            self.problems.append(error)
            return None


def parse_entry(
    record: Mapping[str, str | None], row: int, file: str, dialect: Dialect = NATIVE
) -> ManifestEntry | list[InputError]:
    """One row (keyed by this project's column names) as an entry, or all of its problems."""
    at = _Row(file, row, dialect)

    def text(column: str) -> str:
        return _text(record, column, dialect)

    dataset = at.dataset_id(record.get("dataset_id"), "dataset_id")
    location = text("file")
    if not location:
        at.fail("file", "no file or folder given", expected="a path or URI")
    upload_type = _upload_type(at, text("upload_type"))
    fmt = _format(at, text("format"), upload_type)
    if dialect.position_indices:
        names, indices = (), _position_indices(at, text("positions"), upload_type, fmt)
    else:
        names, indices = _position_files(at, text("positions"), upload_type, fmt), ()
    parent = _parent(at, text("parent_id"), dataset)
    if at.problems or dataset is None or upload_type is None:
        return at.problems
    return ManifestEntry(
        row=row,
        dataset=dataset,
        file=location,
        description=text("description"),
        parent_id=parent,
        positions=names,
        microscope=text("microscope"),
        upload_type=upload_type,
        format=fmt,
        position_indices=indices,
    )


def _upload_type(at: _Row, value: str) -> str | None:
    upload_type = value.lower() or at.dialect.default_upload_type
    if upload_type in UPLOAD_TYPES:
        return upload_type
    at.fail("upload_type", f"unknown upload type {value!r}", expected=" or ".join(UPLOAD_TYPES))
    return None


def _format(at: _Row, value: str, upload_type: str | None) -> str:
    """The frames format in this project's names (free text for files in our format)."""
    given = value.lower()
    if upload_type != "frames":
        return "" if at.dialect.position_indices else given  # imagingDB ignores it for files
    fmt = (IMAGINGDB_FORMATS.get(given, given) if at.dialect.position_indices else given) or "auto"
    if fmt not in FRAME_FORMATS:
        names = [*IMAGINGDB_FORMATS, *FRAME_FORMATS] if at.dialect.position_indices else []
        at.fail(
            "format",
            f"unknown frames format {value!r}",
            expected=", ".join(names or FRAME_FORMATS),
        )
    return fmt


def _position_files(at: _Row, value: str, upload_type: str | None, fmt: str) -> tuple[str, ...]:
    positions = tuple(p.strip() for p in value.split(";") if p.strip())
    if not positions or upload_type is None:
        return positions
    if upload_type != "frames" or fmt not in ("auto", "ome-tiff"):
        at.fail(
            "positions",
            "positions are only for multi-file OME-TIFF sets of upload type frames",
            expected="empty, or upload_type frames with format ome-tiff",
        )
    if len(set(positions)) != len(positions):
        at.fail("positions", "a file is listed twice in positions")
    return positions


def _position_indices(at: _Row, value: str, upload_type: str | None, fmt: str) -> tuple[int, ...]:
    if not value:
        return ()
    try:
        indices = parse_position_indices(value)
    except ValueError as error:
        at.fail("positions", str(error), expected="a list of position indices such as [0, 2]")
        return ()
    if len(set(indices)) != len(indices):
        at.fail("positions", f"a position is listed twice in {value!r}")
    if (
        indices
        and upload_type is not None
        and (upload_type != "frames" or fmt not in POSITION_INDEX_FORMATS)
    ):
        at.fail(
            "positions",
            "position indices are only for multi-position acquisitions of upload type frames",
            expected=f"empty, or upload_type frames with frames_format ome_tiff (or "
            f"{', '.join(POSITION_INDEX_FORMATS)})",
        )
    return indices


def parse_position_indices(text: str) -> tuple[int, ...]:
    """`[0, 2]` -> (0, 2); `1` (or `1.0`, as pandas writes integers beside gaps) -> (1,)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{text!r} is not a list of position indices") from error
    items = value if isinstance(value, list) else [value]
    indices = []
    for item in items:
        number = item if isinstance(item, int | float) and not isinstance(item, bool) else None
        if number is None or not math.isfinite(number) or number != int(number):
            raise ValueError(f"{item!r} in {text!r} is not a position index (an integer)")
        if not 0 <= number <= MAX_POSITION_INDEX:
            raise ValueError(f"position index {item!r} is out of range")
        indices.append(int(number))
    return tuple(indices)


def _parent(at: _Row, value: str, dataset: DatasetId | None) -> str | None:
    if not value:
        return None
    parent = at.dataset_id(value, "parent_id")
    if parent is None:
        return None
    if dataset is not None and parent.text == dataset.text:
        at.fail("parent_id", f"dataset {parent.text} is its own parent")
    return parent.text


# -- the whole manifest ----------------------------------------------------------------------------


def parse_manifest(data: bytes, file: str, registered: Mapping[str, str] | None = None) -> Manifest:
    """Parse and check every row against the registered datasets (id -> content sha256).

    Bad rows do not raise: they are the manifest's `problems`, the good ones its `entries`. An id
    twice with the same content counts once; twice with different content, or different from what
    is registered, every row of it is bad. A parent must be registered or a good row. Raises
    InputError only for what spoils every row: an unreadable file, missing or unknown columns.
    """
    registered = dict(registered or {})
    names, records = read_table(data, file)
    dialect = dialect_of(names)
    _check_columns(names, file, dialect)
    problems: list[InputError] = []
    by_id: dict[str, list[ManifestEntry]] = {}
    row_ids = []
    for row, record in enumerate(records, start=1):
        values = _canonical(record, dialect)
        row_ids.append((row, _text(values, "dataset_id", dialect)))
        if None in record:
            problems.append(_extra_fields(file, row, len(names), len(record[None] or [])))
            continue
        result = parse_entry(values, row, file, dialect)
        if isinstance(result, ManifestEntry):
            by_id.setdefault(result.dataset_id, []).append(result)
        else:
            problems.extend(result)
    entries = []
    for dataset_id, same in by_id.items():
        clashes = _id_problems(same, registered.get(dataset_id), file)
        problems.extend(clashes)
        if not clashes:
            entries.append(same[0])
    manifest = Manifest(
        file=file,
        entries=(),
        rows=len(records),
        dialect=dialect,
        ignored_columns=tuple(c for c in names if c in dialect.ignored),
        registered=frozenset(registered),
        row_ids=tuple(row_ids),
    )
    return _settle(manifest, entries, problems)


def _extra_fields(file: str, row: int, columns: int, extra: int) -> InputError:
    return InputError(
        file,
        f"row has {columns + extra} fields",
        row=row,
        expected=f"{columns} fields as in the header",
    )


def _id_problems(same: list[ManifestEntry], known: str | None, file: str) -> list[InputError]:
    """Problems of the rows of one dataset id: differing from each other or from the registry."""
    first = same[0]
    other = next((e for e in same if e.content_sha256() != first.content_sha256()), None)
    rows = _rows_text([e.row for e in same])
    if other is not None:
        differences = _differences(first.content(), other.content())
        return [
            InputError(
                file,
                f"dataset {e.dataset_id} appears in rows {rows} with different content "
                f"({differences})",
                column="dataset_id",
                row=e.row,
                expected="one row per dataset id",
            )
            for e in same
        ]
    if known is not None and known != first.content_sha256():
        return [
            InputError(
                file,
                f"dataset {e.dataset_id} is already registered with different content; "
                "an id may not be reused (give the new acquisition a new serial)",
                column="dataset_id",
                row=e.row,
                expected="the registered content or a new id",
            )
            for e in same
        ]
    return []


def _settle(
    manifest: Manifest, entries: Iterable[ManifestEntry], problems: list[InputError]
) -> Manifest:
    """The manifest whose entries are the rows without problems whose parents can register."""
    bad = {p.row for p in problems}
    good = {e.dataset_id: e for e in entries if e.row not in bad}
    while orphans := [
        e
        for e in good.values()
        if e.parent_id and e.parent_id not in good and e.parent_id not in manifest.registered
    ]:
        for entry in orphans:
            problems.append(_orphan(manifest, entry))
            del good[entry.dataset_id]
    ordered = tuple(sorted(good.values(), key=lambda e: e.row))
    return replace(
        manifest,
        entries=ordered,
        new=tuple(e for e in ordered if e.dataset_id not in manifest.registered),
        problems=tuple(sorted(problems, key=lambda p: p.row or 0)),
    )


def _orphan(manifest: Manifest, entry: ManifestEntry) -> InputError:
    column = manifest.dialect.column("parent_id")
    parent_rows = [row for row, text in manifest.row_ids if text == entry.parent_id]
    if parent_rows:
        return InputError(
            manifest.file,
            f"parent dataset {entry.parent_id} (row {_rows_text(parent_rows)}) is a bad row, "
            f"so {entry.dataset_id} cannot register without it",
            column=column,
            row=entry.row,
            expected="the parent's row fixed, or a registered parent",
        )
    return InputError(
        manifest.file,
        f"parent dataset {entry.parent_id} of {entry.dataset_id} is neither registered nor in "
        "the manifest",
        column=column,
        row=entry.row,
        expected="a registered dataset id or another row of the manifest",
    )


def _rows_text(rows: list[int]) -> str:
    if len(rows) == 1:
        return str(rows[0])
    return f"{', '.join(map(str, rows[:-1]))} and {rows[-1]}"


def _differences(a: dict, b: dict) -> str:
    keys = [k for k in {**a, **b} if a.get(k) != b.get(k)]
    return ", ".join(f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in keys[:4])


def manifest_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
