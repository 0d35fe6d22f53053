"""Both load_data formats normalised to one long table: one row per (site, channel).

Current format (cpg0016, 2025+): `URL_Orig{Ch}` / `URL_Illum{Ch}` columns with full URIs.
Older format: `FileName_Orig{Ch}` + `PathName_Orig{Ch}` (and `_Illum`), CSV or parquet.

Two locations per image, both kept:
- `load_data_uri`: the canonical URI exactly as the load data names it (for cpg0016,
  ``s3://cellpainting-gallery/cpg0016-jump/<source>/images/...``; for the older format PathName and
  FileName joined by one slash). It is what the image pipeline stores as the raw URI: the same
  whichever mirror the bytes came from.
- `uri` (and `illum_uri`): where the object is read from, the canonical URI rebased onto the
  configured source root by resolve_uris, so the same manifest works against the bucket, a local
  mirror or a test server.

Validation, each failure an InputError naming the file, the column and the 1-based data row:
- every row names the partition's plate and source (Metadata_Plate, Metadata_Source), when the
  caller gives them (the `load_data` asset always does);
- source, plate, well and site are valid key parts (imaging_assets.jump.keys.check_key_part: no `__`,
  `/`, `,` or control character, no `_` at either end, not empty), so no two sites share a key;
- one row per site; every image has a location; frames are page numbers;
- after resolution every uri and illum_uri is under the source root: a location that is not
  (an absolute path elsewhere, another bucket or host, a `..` segment) is refused, not read.
The output carries `load_data_row`, the 1-based data row of the file each image came from, so a
later error can point back at the file.
"""

from __future__ import annotations

import io
import re
import urllib.parse
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from imaging_assets.core.errors import InputError
from imaging_assets.core.stores import has_scheme
from imaging_assets.jump.csv import decompress, empty_cells, read_typed_csv
from imaging_assets.jump.keys import KEY_PART_RULE, SEPARATOR, key_part_problem
from imaging_assets.jump.layout import CANONICAL_ROOTS, rebase_to_source_key
from imaging_assets.jump.schemas import LOAD_DATA_SCHEMA

Format = Literal["csv", "parquet"]
REQUIRED = ("Metadata_Plate", "Metadata_Well", "Metadata_Site")
_URL = re.compile(r"^URL_Orig(?P<ch>.+)$")
_FILE = re.compile(r"^FileName_Orig(?P<ch>.+)$")
_PATH = re.compile(r"^PathName_Orig(?P<ch>.+)$")
KEY_COLUMNS = ("Metadata_Source", "Metadata_Plate", "Metadata_Well", "Metadata_Site")
ROW_COLUMN = "load_data_row"
_FILE_KEY = b"imaging_assets:load_data_file"
_STYLE_KEY = b"imaging_assets:load_data_style"


def read_raw_table(data: bytes, file: str, fmt: Format) -> pa.Table:
    """The file as a table of text columns (Metadata_* stay text: "01" stays "01")."""
    if fmt == "csv":
        return read_typed_csv(decompress(data, file), file, {})
    if fmt != "parquet":
        raise InputError(file, "unknown load_data format", expected="csv or parquet", got=fmt)
    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError) as error:
        raise InputError(file, f"not a readable parquet file ({error})") from error
    columns = {}
    for field in table.schema:
        try:
            columns[field.name] = table[field.name].cast(pa.string())
        except pa.ArrowException as error:
            raise InputError(
                file,
                f"a column cannot be read as text ({error})",
                column=field.name,
                expected="text or numbers",
                got=str(field.type),
            ) from error
    return pa.table(columns)


def channels_of(columns: list[str], file: str) -> tuple[list[str], str]:
    """The channels named by the columns and which format carries them ("url" or "path")."""
    urls = [m["ch"] for c in columns if (m := _URL.match(c))]
    if urls:
        return urls, "url"
    files = {m["ch"] for c in columns if (m := _FILE.match(c))}
    paths = {m["ch"] for c in columns if (m := _PATH.match(c))}
    for channel in sorted(files ^ paths):
        present, absent = ("FileName", "PathName") if channel in files else ("PathName", "FileName")
        raise InputError(
            file,
            f"{present}_Orig{channel} has no matching {absent}_Orig{channel}",
            column=f"{absent}_Orig{channel}",
        )
    if not files:
        raise InputError(
            file,
            "no image columns",
            expected="URL_Orig<channel> or FileName_Orig<channel> + PathName_Orig<channel>",
            got=", ".join(columns[:12]),
        )
    return [m["ch"] for c in columns if (m := _FILE.match(c))], "path"


def _require_channels(found: list[str], required, style: str, file: str) -> None:
    missing = [c for c in required if c not in found]
    if missing:
        column = f"URL_Orig{missing[0]}" if style == "url" else f"FileName_Orig{missing[0]}"
        raise InputError(
            file,
            f"no image column for channel(s) {', '.join(missing)}",
            column=column,
            expected=f"a column per channel the images are made of ({', '.join(required)})",
            got=", ".join(found),
        )


def _join_path(path: pa.ChunkedArray, name: pa.ChunkedArray) -> pa.ChunkedArray:
    """PathName + "/" + FileName with exactly one slash between them."""
    trimmed = pc.utf8_rtrim(path, characters="/")
    return pc.binary_join_element_wise(trimmed, pc.utf8_ltrim(name, characters="/"), "/")


def _uri_column(table: pa.Table, kind: str, channel: str, style: str) -> pa.ChunkedArray | None:
    if style == "url":
        column = f"URL_{kind}{channel}"
        return table[column] if column in table.column_names else None
    file_col, path_col = f"FileName_{kind}{channel}", f"PathName_{kind}{channel}"
    if file_col in table.column_names and path_col in table.column_names:
        return _join_path(table[path_col], table[file_col])
    return None


def _frame_column(table: pa.Table, channel: str, file: str) -> pa.ChunkedArray:
    """The TIFF page of each image: LoadData's Frame_Orig{Ch} when present, else the first (0)."""
    column = f"Frame_Orig{channel}"
    if column not in table.column_names:
        return pa.chunked_array([pa.array([0] * table.num_rows, pa.int32())])
    values = pc.fill_null(table[column], "0")
    try:
        return values.cast(pa.int32())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
        bad = next(i for i, v in enumerate(values.to_pylist()) if not str(v).strip().isdigit())
        raise InputError(
            file,
            "frame is not a page number",
            column=column,
            row=bad + 1,
            expected="an integer >= 0",
            got=values[bad].as_py(),
        ) from error


def _constant_or_column(
    table: pa.Table, column: str, given: str | None, file: str
) -> pa.ChunkedArray:
    if column in table.column_names:
        return table[column]
    if given is None:
        raise InputError(
            file,
            f"no {column} column and none given by the caller",
            column=column,
            expected="the column, or the value from the plate index",
        )
    return pa.chunked_array([pa.array([given] * table.num_rows, pa.string())])


def normalize_load_data(
    data: bytes,
    file: str,
    fmt: Format,
    *,
    source: str | None = None,
    batch: str | None = None,
    plate: str | None = None,
    channels: tuple[str, ...] | list[str] = (),
) -> pa.Table:
    """One row per (site, channel): source, batch, plate, well, site, channel, uri, illum_uri,
    site_key, frame, and load_data_row (the file's 1-based data row).

    `source` and `batch` fill the Metadata_Source / Metadata_Batch columns when the file has
    none. `source` and `plate`, when given, are the partition's: every row must name them.
    `channels`: every one must have its image column (the channels the images are made of), so
    a file missing one is refused here, naming it, not later when a site lacks the channel.
    """
    table = read_raw_table(data, file, fmt)
    if table.num_rows == 0:
        raise InputError(file, "no rows", expected="one row per site")
    for column in REQUIRED:
        if column not in table.column_names:
            raise InputError(file, "missing column", column=column, expected=", ".join(REQUIRED))
        row = empty_cells(table, column)
        if row is not None:
            raise InputError(file, "empty value in a required column", column=column, row=row)
    found, style = channels_of(table.column_names, file)
    _require_channels(found, channels, style, file)
    channels = found
    sources = _constant_or_column(table, "Metadata_Source", source, file)
    batches = _constant_or_column(table, "Metadata_Batch", batch, file)
    _check_partition(table, file, source, plate)
    given = "Metadata_Source" not in table.column_names
    _check_key_parts(
        file,
        {
            "Metadata_Source": sources,
            "Metadata_Plate": table["Metadata_Plate"],
            "Metadata_Well": table["Metadata_Well"],
            "Metadata_Site": table["Metadata_Site"],
        },
        given={"Metadata_Source"} if given else set(),
    )
    rows = pa.chunked_array([pa.array(range(1, table.num_rows + 1), pa.int32())])
    site_keys = pc.binary_join_element_wise(
        sources, table["Metadata_Plate"], table["Metadata_Well"], table["Metadata_Site"], SEPARATOR
    )
    counts = pa.table({"k": site_keys}).group_by("k").aggregate([("k", "count")])
    duplicated = counts.filter(pc.greater(counts["k_count"], 1))
    if duplicated.num_rows:
        key = duplicated["k"][0].as_py()
        positions = pc.indices_nonzero(pc.equal(site_keys, key)).to_pylist()
        row = positions[1] + 1  # the repeat, not the first occurrence
        raise InputError(
            file,
            f"site {key} appears more than once",
            column="Metadata_Plate, Metadata_Well, Metadata_Site",
            row=row,
        )

    parts = []
    metadata = {_FILE_KEY: file.encode(), _STYLE_KEY: style.encode()}
    for channel in channels:
        uri = _uri_column(table, "Orig", channel, style)
        row = empty_cells(pa.table({"uri": uri}), "uri")
        if row is not None:
            column = f"URL_Orig{channel}" if style == "url" else f"FileName_Orig{channel}"
            raise InputError(file, "empty image location", column=column, row=row)
        frame = _frame_column(table, channel, file)
        illum = _uri_column(table, "Illum", channel, style)
        if illum is None:
            illum = pa.chunked_array([pa.nulls(table.num_rows, pa.string())])
        parts.append(
            pa.table(
                {
                    "source": sources,
                    "batch": batches,
                    "plate": table["Metadata_Plate"],
                    "well": table["Metadata_Well"],
                    "site": table["Metadata_Site"],
                    "channel": pa.chunked_array([pa.array([channel] * table.num_rows)]),
                    "uri": uri,
                    "illum_uri": illum,
                    "site_key": site_keys,
                    "frame": frame,
                },
                schema=LOAD_DATA_SCHEMA,
            )
            .append_column(pa.field(ROW_COLUMN, pa.int32()), rows)
            .replace_schema_metadata(metadata)
        )
    return pa.concat_tables(parts).sort_by([("site_key", "ascending"), ("channel", "ascending")])


def _first_row(values: pa.ChunkedArray, mask: pa.ChunkedArray | pa.Array) -> int | None:
    """1-based row of the first true in mask (nulls count as false), or None."""
    mask = pc.fill_null(mask, False)
    if not pc.any(mask).as_py():
        return None
    return int(pc.index(mask, True).as_py()) + 1


def _check_partition(table: pa.Table, file: str, source: str | None, plate: str | None) -> None:
    """Every row names the partition's source and plate (when the caller gives them).

    A file of another plate would otherwise be read for this partition: its rows would be stored
    under the other plate, and this plate's rows downstream replaced by nothing.
    """
    for column, wanted in (("Metadata_Source", source), ("Metadata_Plate", plate)):
        if wanted is None or column not in table.column_names:
            continue
        values = table[column]
        row = _first_row(values, pc.not_equal(values, wanted))
        if row is not None:
            found = values[row - 1].as_py()
            what = column.removeprefix("Metadata_").lower()
            raise InputError(
                file,
                f"the row names {what} {found!r}, but this is the load data of {what} {wanted!r}",
                column=column,
                row=row,
                expected=repr(wanted),
                got=found,
            )


def _check_key_parts(file: str, columns: dict[str, pa.ChunkedArray], given: set[str]) -> None:
    """Every value that becomes part of a key follows the key part rule (keys.check_key_part).

    Checked per distinct value, so a plate of thousands of rows costs a handful of checks; the
    first offending row of the file is named. Columns in `given` came from the caller.
    """
    for column, values in columns.items():
        for value in pc.unique(values).to_pylist():
            problem = key_part_problem(value)
            if problem is None:
                continue
            if column in given:
                raise InputError(
                    file,
                    f"the {column} given by the caller (the file has no such column) {problem}",
                    column=column,
                    expected=KEY_PART_RULE,
                    got=value,
                )
            mask = pc.is_null(values) if value is None else pc.equal(values, value)
            raise InputError(
                file,
                f"a key part {problem}",
                column=column,
                row=_first_row(values, mask),
                expected=KEY_PART_RULE,
                got=value,
            )


def _has_dot_dot(uri: str) -> bool:
    """A `..` segment, also percent-encoded (an HTTP server would decode it)."""
    return ".." in urllib.parse.unquote(uri).split("/")


def resolve_uri(
    uri: str, source: str, root: str, canonical: tuple[str, ...] = CANONICAL_ROOTS
) -> str:
    """Where a location of the load data is read from: under `root`, or ValueError saying why not.

    A URI of the collection the root mirrors (under one of `canonical`, by default the Cell
    Painting Gallery: "s3://cellpainting-gallery/cpg0016-jump/source_4/images/...") is rebased:
    everything from "source_4/" on is the key under the root. A relative path joins the root.
    Anything else (an absolute path, another bucket or host) is kept as written and must itself
    be under the root: a URI of another bucket is refused, never rebased. No `..` segment is
    accepted anywhere: object stores take it literally, file systems and HTTP servers resolve
    it, so it cannot mean one place.
    """
    text = uri.replace("\\", "/")
    if _has_dot_dot(text):
        raise ValueError("has a '..' segment")
    mirrored = any(text.startswith(prefix) for prefix in canonical)
    key = rebase_to_source_key(text, source) if mirrored else None
    if key is not None:
        resolved = f"{root}/{key}"
    elif text.startswith("file://") and not has_scheme(root):
        resolved = urllib.parse.unquote(urllib.parse.urlparse(text).path)
    elif has_scheme(text) or text.startswith("/"):
        resolved = text
    else:
        resolved = f"{root}/{text}"
    if not resolved.startswith(root + "/"):
        raise ValueError(f"resolves to {resolved!r}")
    return resolved


def _location_column(style: str, kind: str, channel: str) -> str:
    return f"URL_{kind}{channel}" if style == "url" else f"PathName_{kind}{channel}"


def resolve_uris(table: pa.Table, source_root: str, file: str | None = None) -> pa.Table:
    """uri and illum_uri rebased onto `source_root`; the manifest's own URI kept in load_data_uri.

    "s3://cellpainting-gallery/cpg0016-jump/source_4/images/..." becomes
    "<source_root>/source_4/images/..."; relative paths join the root. A location that is not
    under the root after this (see resolve_uri) is an InputError naming the file, the column
    (URL_Orig{Ch} / URL_Illum{Ch}, or PathName_... for the older format), the row and the root.
    """
    root = str(source_root).rstrip("/")
    metadata = table.schema.metadata or {}
    file = file or metadata.get(_FILE_KEY, b"load_data").decode()
    style = metadata.get(_STYLE_KEY, b"url").decode()
    rows = (
        table[ROW_COLUMN].to_pylist()
        if ROW_COLUMN in table.column_names
        else [None] * table.num_rows
    )
    sources = table["source"].to_pylist()
    channels = table["channel"].to_pylist()
    uris = table["uri"].to_pylist()
    resolved: dict[str, list[str | None]] = {"uri": [], "illum_uri": []}
    for name, kind in (("uri", "Orig"), ("illum_uri", "Illum")):
        values = uris if name == "uri" else table[name].to_pylist()
        out = resolved[name]
        for value, source, channel, row in zip(values, sources, channels, rows, strict=True):
            if value is None:
                out.append(None)
                continue
            try:
                out.append(resolve_uri(value, source, root))
            except ValueError as reason:
                raise InputError(
                    file,
                    f"the location {reason}, which is not under the source root {root}",
                    column=_location_column(style, kind, channel),
                    row=row,
                    expected=f"a location under {root}",
                    got=value,
                ) from None
    table = table.set_column(
        table.column_names.index("uri"), "uri", pa.array(resolved["uri"], pa.string())
    )
    table = table.set_column(
        table.column_names.index("illum_uri"),
        "illum_uri",
        pa.array(resolved["illum_uri"], pa.string()),
    )
    return table.append_column("load_data_uri", pa.array(uris, pa.string()))


WELL_COLUMNS = ["jcp2022", "modality", "control_role", "control_name", "plate_type"]


def join_well_metadata(load_data: pa.Table, well_metadata: pa.Table) -> pa.Table:
    """Left join on (source, plate, well); wells without metadata kept with has_metadata = false."""
    right = well_metadata.select(["source", "plate", "well", *WELL_COLUMNS])
    right = right.cast(pa.schema([pa.field(name, pa.string()) for name in right.column_names]))
    right = right.append_column("has_metadata", pa.array([True] * right.num_rows, pa.bool_()))
    joined = load_data.join(right, keys=["source", "plate", "well"], join_type="left outer")
    joined = joined.set_column(
        joined.column_names.index("has_metadata"),
        "has_metadata",
        pc.fill_null(joined["has_metadata"], False),
    )
    order = [*load_data.column_names, *WELL_COLUMNS, "has_metadata"]
    return joined.select(order).sort_by([("site_key", "ascending"), ("channel", "ascending")])


def wells_without_metadata(table: pa.Table) -> list[str]:
    """Wells of a joined table that well metadata does not describe."""
    missing = table.filter(pc.invert(table["has_metadata"]))
    return sorted(set(missing["well"].to_pylist()))
