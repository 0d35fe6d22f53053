"""Strict CSV reading shared by the metadata and load_data parsers.

The files carry no types, so every column is read as declared (text unless a schema says
otherwise); a bad value is located by file, column and 1-based data row instead of surfacing as a
bare Arrow conversion error.
"""

from __future__ import annotations

import csv
import gzip
import io
import re
import zlib

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from imaging_assets.core.errors import InputError

GZIP_MAGIC = b"\x1f\x8b"
# Arrow reads in blocks that must hold whole rows; fields up to this size parse on the first try.
BLOCK_SIZE = 16 << 20
_UNDECODABLE = re.compile("[\udc80-\udcff]")  # bytes that are not UTF-8, surrogate-escaped


def decompress(data: bytes, file: str) -> bytes:
    """The bytes, gunzipped when they start with the gzip magic number."""
    if not data.startswith(GZIP_MAGIC):
        return data
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error) as error:
        raise InputError(file, f"not a readable gzip file ({error})") from error


def header(data: bytes, file: str) -> list[str]:
    """Column names of a CSV (first line), or a clear error for an empty or undecodable header."""
    if not data.strip():
        raise InputError(file, "the file is empty", expected="a CSV header and rows")
    first = data.split(b"\n", 1)[0].rstrip(b"\r")
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InputError(
            file,
            f"the header line (line 1) is not valid UTF-8 (byte {error.start + 1})",
            expected="UTF-8 text",
        ) from error
    return next(csv.reader([text]))


def _first_bad_value(column: pa.ChunkedArray, type_: pa.DataType) -> tuple[int, str] | None:
    for row, value in enumerate(column.to_pylist(), start=1):
        if value is None:
            continue
        try:
            pa.array([value], pa.string()).cast(type_)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return row, value
    return None


def _read(data: bytes, options: pacsv.ConvertOptions, *, whole: bool = False) -> pa.Table:
    """Arrow's reader; `whole` reads the file as one block that may hold newlines in quotes.

    Arrow needs every row inside one block; its 1 MB default makes a legitimate field of a few
    MB fail ("straddling object"). The first try uses blocks of BLOCK_SIZE (fields up to that
    size parse, reading stays multi-threaded); only when that fails is the file read as one block
    with quoted newlines allowed, the most permissive read, before any error is reported.
    """
    block_size = max(len(data) + 1, BLOCK_SIZE) if whole else BLOCK_SIZE
    read_options = pacsv.ReadOptions(block_size=block_size)
    parse_options = pacsv.ParseOptions(newlines_in_values=whole)
    return pacsv.read_csv(
        io.BytesIO(data),
        read_options=read_options,
        parse_options=parse_options,
        convert_options=options,
    )


def _text_options(names: list[str]) -> pacsv.ConvertOptions:
    return pacsv.ConvertOptions(
        column_types={name: pa.string() for name in names},
        null_values=[""],
        strings_can_be_null=True,
    )


def locate_csv_problem(data: bytes, file: str, names: list[str]) -> InputError | None:
    """The first structural problem of a CSV as an InputError, by re-reading it with `csv`.

    Arrow's own errors name neither the file nor the row. Finds bytes that are not UTF-8 (with
    their column), rows with too few or too many fields, and unparseable quoting; rows are 1-based
    data rows (the header is not counted, blank lines are skipped as Arrow skips them), the
    physical line is in the message.
    """
    text = data.decode("utf-8", errors="surrogateescape").removeprefix("\ufeff")
    limit = csv.field_size_limit()
    csv.field_size_limit(max(limit, min(len(text) + 1, 2**31 - 1)))
    try:
        reader = csv.reader(io.StringIO(text, newline=""))
        row = 0
        try:
            for record in reader:
                if not record:
                    continue
                for index, value in enumerate(record):
                    bad = _UNDECODABLE.search(value)
                    if bad is None:
                        continue
                    column = names[index] if index < len(names) else None
                    return InputError(
                        file,
                        f"{'the header' if row == 0 else 'a value'} is not valid UTF-8 "
                        f"(line {reader.line_num}, byte 0x{ord(bad.group()) - 0xDC00:02x})",
                        column=column,
                        row=row or None,
                        expected="UTF-8 text",
                    )
                if row and len(record) != len(names):
                    return InputError(
                        file,
                        f"the row has {len(record)} fields, the header {len(names)} "
                        f"(line {reader.line_num})",
                        row=row,
                        expected=f"{len(names)} fields",
                        got=len(record),
                    )
                row += 1
        except csv.Error as error:
            return InputError(
                file, f"not a readable CSV at line {reader.line_num} ({error})", row=row or None
            )
    finally:
        csv.field_size_limit(limit)
    return None


def read_typed_csv(data: bytes, file: str, types: dict[str, pa.DataType]) -> pa.Table:
    """Every column as text except those in `types`; nulls only for empty cells.

    Every Arrow error becomes an InputError naming the file and, where it can be found, the
    column and 1-based data row (see locate_csv_problem).
    """
    names = header(data, file)
    text = {name: pa.string() for name in names}
    options = pacsv.ConvertOptions(
        column_types={**text, **{k: v for k, v in types.items() if k in text}},
        null_values=[""],
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
    )
    try:
        return _read(data, options)
    except pa.ArrowException as first_error:
        error = first_error
    try:
        return _read(data, options, whole=True)  # a big field, or a newline inside quotes
    except pa.ArrowException as whole_error:
        error = whole_error
    problem = locate_csv_problem(data, file, names)
    if problem is not None:
        raise problem from error
    try:
        strings = _read(data, _text_options(names), whole=True)
    except pa.ArrowException as text_error:
        raise InputError(file, f"not a readable CSV ({text_error})") from text_error
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
