"""Both load_data formats normalised to one long table: one row per (site, channel).

Current format (cpg0016, 2025+): `URL_Orig{Ch}` / `URL_Illum{Ch}` columns with full URIs.
Older format: `FileName_Orig{Ch}` + `PathName_Orig{Ch}` (and `_Illum`), CSV or parquet.
The URIs name the public bucket; resolve_uris rebases them onto the configured source root so the
same manifest works against the bucket, a local mirror or a test server.
"""

from __future__ import annotations

import io
import re
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from imaging_assets.errors import InputError
from imaging_assets.jump.csv import decompress, empty_cells, read_typed_csv
from imaging_assets.keys import SEPARATOR
from imaging_assets.layout import rebase_to_source_key
from imaging_assets.resources.stores import has_scheme
from imaging_assets.schemas import LOAD_DATA_SCHEMA

Format = Literal["csv", "parquet"]
REQUIRED = ("Metadata_Plate", "Metadata_Well", "Metadata_Site")
_URL = re.compile(r"^URL_Orig(?P<ch>.+)$")
_FILE = re.compile(r"^FileName_Orig(?P<ch>.+)$")
_PATH = re.compile(r"^PathName_Orig(?P<ch>.+)$")


def read_raw_table(data: bytes, file: str, fmt: Format) -> pa.Table:
    """The file as a table of text columns (Metadata_* stay text: "01" stays "01")."""
    if fmt == "csv":
        return read_typed_csv(decompress(data, file), file, {})
    if fmt != "parquet":
        raise InputError(file, "unknown load_data format", expected="csv or parquet", got=fmt)
    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowInvalid, OSError) as error:
        raise InputError(file, f"not a readable parquet file ({error})") from error
    return table.cast(pa.schema([pa.field(f.name, pa.string()) for f in table.schema]))


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
) -> pa.Table:
    """One row per (site, channel): source, batch, plate, well, site, channel, uri, illum_uri, site_key."""
    table = read_raw_table(data, file, fmt)
    if table.num_rows == 0:
        raise InputError(file, "no rows", expected="one row per site")
    for column in REQUIRED:
        if column not in table.column_names:
            raise InputError(file, "missing column", column=column, expected=", ".join(REQUIRED))
        row = empty_cells(table, column)
        if row is not None:
            raise InputError(file, "empty value in a required column", column=column, row=row)
    channels, style = channels_of(table.column_names, file)
    sources = _constant_or_column(table, "Metadata_Source", source, file)
    batches = _constant_or_column(table, "Metadata_Batch", batch, file)
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
        )
    return pa.concat_tables(parts).sort_by([("site_key", "ascending"), ("channel", "ascending")])


def _resolve(uri: str | None, source: str, root: str) -> str | None:
    if uri is None:
        return None
    key = rebase_to_source_key(uri, source)
    if key is not None:
        return f"{root}/{key}"
    if has_scheme(uri) or uri.startswith("/"):
        return uri
    return f"{root}/{uri.lstrip('/')}"


def resolve_uris(table: pa.Table, source_root: str) -> pa.Table:
    """uri and illum_uri rebased onto `source_root`; the manifest's own URI kept in load_data_uri.

    "s3://cellpainting-gallery/cpg0016-jump/source_4/images/..." becomes
    "<source_root>/source_4/images/..."; relative paths join the root; other absolute URIs stay.
    """
    root = str(source_root).rstrip("/")
    sources = table["source"].to_pylist()
    uris = table["uri"].to_pylist()
    illums = table["illum_uri"].to_pylist()
    resolved = [_resolve(u, s, root) for u, s in zip(uris, sources, strict=True)]
    resolved_illum = [_resolve(u, s, root) for u, s in zip(illums, sources, strict=True)]
    index = table.column_names.index("uri")
    table = table.set_column(index, "uri", pa.array(resolved, pa.string()))
    table = table.set_column(
        table.column_names.index("illum_uri"), "illum_uri", pa.array(resolved_illum, pa.string())
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
