"""Strict CSV reading shared by the metadata and load_data parsers.

The files carry no types, so every column is read as declared (text unless a schema says
otherwise); a bad value is located by file, column and 1-based data row instead of surfacing as a
bare Arrow conversion error.
"""

from __future__ import annotations

import csv
import gzip
import io
import zlib

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from imaging_assets.errors import InputError

GZIP_MAGIC = b"\x1f\x8b"


def decompress(data: bytes, file: str) -> bytes:
    """The bytes, gunzipped when they start with the gzip magic number."""
    if not data.startswith(GZIP_MAGIC):
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as error:
        raise InputError(file, f"not a readable gzip file ({error})") from error


def header(data: bytes, file: str) -> list[str]:
    """Column names of a CSV (first line), or a clear error for an empty file."""
    if not data.strip():
        raise InputError(file, "the file is empty", expected="a CSV header and rows")
    first = data.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8-sig", errors="replace")
    return next(csv.reader([first]))


def _first_bad_value(column: pa.ChunkedArray, type_: pa.DataType) -> tuple[int, str] | None:
    for row, value in enumerate(column.to_pylist(), start=1):
        if value is None:
            continue
        try:
            pa.array([value], pa.string()).cast(type_)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return row, value
    return None


def read_typed_csv(data: bytes, file: str, types: dict[str, pa.DataType]) -> pa.Table:
    """Every column as text except those in `types`; nulls only for empty cells."""
    names = header(data, file)
    text = {name: pa.string() for name in names}
    options = pacsv.ConvertOptions(
        column_types={**text, **{k: v for k, v in types.items() if k in text}},
        null_values=[""],
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
    )
    try:
        return pacsv.read_csv(io.BytesIO(data), convert_options=options)
    except pa.ArrowInvalid as error:
        strings = pacsv.read_csv(
            io.BytesIO(data),
            convert_options=pacsv.ConvertOptions(
                column_types=text, null_values=[""], strings_can_be_null=True
            ),
        )
        for name, type_ in types.items():
            if name in strings.column_names:
                bad = _first_bad_value(strings[name], type_)
                if bad:
                    raise InputError(
                        file,
                        "a value cannot be parsed",
                        column=name,
                        row=bad[0],
                        expected=str(type_),
                        got=bad[1],
                    ) from error
        raise InputError(file, f"not a readable CSV ({error})") from error


def empty_cells(table: pa.Table, column: str) -> int | None:
    """1-based row of the first null or empty value of a column, or None."""
    values = table[column]
    missing = pc.or_kleene(pc.is_null(values), pc.equal(values, ""))
    missing = pc.fill_null(missing, True)
    if not pc.any(missing).as_py():
        return None
    return int(pc.index(missing, True).as_py()) + 1
