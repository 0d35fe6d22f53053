"""The JUMP metadata tables (jump-cellpainting/datasets, metadata/) as typed Arrow tables.

Strict on purpose: a renamed or missing column, or a value that does not parse, stops the pipeline
with the file, column and row, instead of flowing downstream as nulls.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from imaging_assets.core.errors import InputError
from imaging_assets.jump.csv import decompress, empty_cells, header, read_typed_csv
from imaging_assets.jump.keys import KEY_PART_RULE, key_part_problem
from imaging_assets.jump.schemas import METADATA_SCHEMAS, WELL_METADATA_SCHEMA

FILE_NAMES: dict[str, str] = {
    "plate": "plate.csv.gz",
    "well": "well.csv.gz",
    "compound": "compound.csv.gz",
    "compound_source": "compound_source.csv.gz",
    "orf": "orf.csv.gz",
    "crispr": "crispr.csv.gz",
    "perturbation_control": "perturbation_control.csv",
    "microscope_config": "microscope_config.csv",
    "microscope_filter": "microscope_filter.csv",
    "cellprofiler_version": "cellprofiler_version.csv",
}

# Tables the pipeline does not read: when absent from the metadata folder their assets are empty
# typed tables (and say so), instead of failing the metadata job.
OPTIONAL_TABLES: tuple[str, ...] = ("compound_source", "microscope_filter", "cellprofiler_version")
# Every other table must be there: plate (plate index, partitions), well, compound, orf, crispr and
# perturbation_control (well metadata, control roles), microscope_config.
REQUIRED_TABLES: tuple[str, ...] = tuple(n for n in FILE_NAMES if n not in OPTIONAL_TABLES)

# Plate types whose wells hold compounds, ORFs or guides when a perturbation table is absent.
MODALITY_BY_PLATE_TYPE = {
    "COMPOUND": "compound",
    "COMPOUND_EMPTY": "compound",
    "DMSO": "compound",
    "TARGET1": "compound",
    "TARGET2": "compound",
    "POSCON8": "compound",
    "ORF": "orf",
    "CRISPR": "crispr",
}
CONTROL_ROLES = ("poscon", "negcon", "empty")

# Per table: columns that must have a value in every row, columns that become key parts (see
# imaging_assets.jump.keys), and the columns that identify a row (at most one row per identity).
NOT_EMPTY: dict[str, tuple[str, ...]] = {
    "plate": ("Metadata_Source", "Metadata_Batch", "Metadata_Plate", "Metadata_PlateType"),
    "well": ("Metadata_Source", "Metadata_Plate", "Metadata_Well"),
}
KEY_PARTS: dict[str, tuple[str, ...]] = {
    "plate": ("Metadata_Source", "Metadata_Plate"),
    "well": ("Metadata_Source", "Metadata_Plate", "Metadata_Well"),
}
UNIQUE: dict[str, tuple[str, ...]] = {
    "plate": ("Metadata_Source", "Metadata_Plate"),
    "well": ("Metadata_Source", "Metadata_Plate", "Metadata_Well"),
}


def file_name(name: str) -> str:
    """The file of a table in the metadata folder (e.g. "plate" -> "plate.csv.gz")."""
    if name not in FILE_NAMES:
        raise KeyError(f"unknown JUMP metadata table {name!r}; known: {', '.join(FILE_NAMES)}")
    return FILE_NAMES[name]


def schema(name: str) -> pa.Schema:
    file_name(name)
    return METADATA_SCHEMAS[name]


def empty_table(name: str) -> pa.Table:
    """A table with no rows and the schema of `name` (what an absent optional table becomes)."""
    return schema(name).empty_table()


def read_metadata_table(name: str, data: bytes, file: str) -> pa.Table:
    """One metadata table, typed by its schema; unknown extra columns are kept as text."""
    expected = schema(name)
    data = decompress(data, file)
    columns = header(data, file)
    missing = [field.name for field in expected if field.name not in columns]
    if missing:
        raise InputError(
            file,
            f"missing column {missing[0]!r} ({len(missing)} missing)",
            column=missing[0],
            expected=", ".join(expected.names),
            got=", ".join(columns),
        )
    table = read_typed_csv(data, file, {field.name: field.type for field in expected})
    validate_table(name, table, file)
    extra = [c for c in table.column_names if c not in expected.names]
    return table.select(expected.names + extra)


def validate_table(name: str, table: pa.Table, file: str) -> None:
    """The rows of a table are complete, usable as keys and not repeated (see NOT_EMPTY, ...).

    A plate listed twice would make two partitions' worth of rows one partition; a plate without
    a type silently gets no sampling quota. Each problem is an InputError with the file, the
    column and the 1-based data row (both rows for a repeat).
    """
    for column in NOT_EMPTY.get(name, ()):
        row = empty_cells(table, column)
        if row is not None:
            raise InputError(
                file, "empty value", column=column, row=row, expected="a value in every row"
            )
    for column in KEY_PARTS.get(name, ()):
        values = table[column]
        for value in pc.unique(values).to_pylist():
            problem = key_part_problem(value)
            if problem is not None:
                row = int(pc.index(values, value).as_py()) + 1
                raise InputError(
                    file,
                    f"a key part {problem}",
                    column=column,
                    row=row,
                    expected=KEY_PART_RULE,
                    got=value,
                )
    columns = UNIQUE.get(name)
    if columns:
        _check_unique(table, list(columns), file)


def _check_unique(table: pa.Table, columns: list[str], file: str) -> None:
    """At most one row per identity; the first repeat names its row and the row it repeats."""
    if table.num_rows == 0:
        return
    counts = table.select(columns).group_by(columns, use_threads=False).aggregate([])
    if counts.num_rows == table.num_rows:
        return
    seen: dict[tuple, int] = {}
    identities = zip(*(table[c].to_pylist() for c in columns), strict=True)
    for row, identity in enumerate(identities, start=1):
        first = seen.setdefault(identity, row)
        if first != row:
            named = ", ".join(
                f"{c.removeprefix('Metadata_').lower()} {v!r}"
                for c, v in zip(columns, identity, strict=True)
            )
            raise InputError(
                file,
                f"{named} is listed more than once: rows {first} and {row}",
                column=", ".join(columns),
                row=row,
                expected="one row per " + " + ".join(columns),
            )


def _first_per_key(table: pa.Table | None, columns: list[str], names: list[str]) -> pa.Table:
    """The first row per key (the first column), selected and renamed; empty when absent."""
    if table is None:
        return pa.table({name: pa.array([], pa.string()) for name in names})
    selected = table.select(columns).rename_columns(names)
    key, rest = names[0], names[1:]
    grouped = selected.group_by(key, use_threads=False).aggregate([(n, "first") for n in rest])
    return pa.table({key: grouped[key], **{n: grouped[f"{n}_first"] for n in rest}})


def _ids(table: pa.Table | None) -> pa.Array:
    if table is None:
        return pa.array([], pa.string())
    return pc.unique(table["Metadata_JCP2022"].combine_chunks())


def well_metadata(
    wells: pa.Table,
    plates: pa.Table,
    perturbation_control: pa.Table,
    compounds: pa.Table | None = None,
    orfs: pa.Table | None = None,
    crisprs: pa.Table | None = None,
) -> pa.Table:
    """One row per (source, plate, well) with its perturbation, modality and control role.

    control_role comes only from perturbation_control (poscon / negcon / empty); any other
    perturbation is "trt", a well without a JCP2022 id has no role. Modality is the table the id is
    found in, else the plate type's, else "unknown". Arrow joins on renamed, selected columns, so
    no _x/_y columns can appear; about a second for JUMP's 1.1M wells.
    """
    table = wells.select(
        ["Metadata_Source", "Metadata_Plate", "Metadata_Well", "Metadata_JCP2022"]
    ).rename_columns(["source", "plate", "well", "jcp2022"])
    plate_table = _first_per_key(
        plates,
        ["Metadata_Plate", "Metadata_Batch", "Metadata_PlateType"],
        ["plate", "batch", "plate_type"],
    )
    unknown = pc.invert(pc.is_in(table["plate"], plate_table["plate"]))
    if pc.any(unknown).as_py():
        row = int(pc.index(unknown, True).as_py())
        raise InputError(
            "well.csv.gz",
            f"well {table['well'][row].as_py()} names plate {table['plate'][row].as_py()}, which "
            "the plate table does not list",
            column="Metadata_Plate",
            row=row + 1,
            got=table["plate"][row].as_py(),
        )
    table = table.join(plate_table, "plate", join_type="left outer")
    controls = _first_per_key(
        perturbation_control,
        ["Metadata_JCP2022", "Metadata_pert_type", "Metadata_Name"],
        ["jcp2022", "pert_type", "control_name"],
    )
    table = table.join(controls, "jcp2022", join_type="left outer")
    table = table.join(
        _first_per_key(
            compounds, ["Metadata_JCP2022", "Metadata_InChIKey"], ["jcp2022", "inchikey"]
        ),
        "jcp2022",
        join_type="left outer",
    )
    symbols = pa.concat_tables(
        [
            _first_per_key(orfs, ["Metadata_JCP2022", "Metadata_Symbol"], ["jcp2022", "symbol"]),
            _first_per_key(crisprs, ["Metadata_JCP2022", "Metadata_Symbol"], ["jcp2022", "symbol"]),
        ]
    )
    table = table.join(
        _first_per_key(symbols, ["jcp2022", "symbol"], ["jcp2022", "symbol"]),
        "jcp2022",
        join_type="left outer",
    )

    jcp = table["jcp2022"]
    types = pa.array(list(MODALITY_BY_PLATE_TYPE))
    labels = pa.array(list(MODALITY_BY_PLATE_TYPE.values()))
    modality = pc.fill_null(pc.take(labels, pc.index_in(table["plate_type"], types)), "unknown")
    for label, source in (("compound", compounds), ("orf", orfs), ("crispr", crisprs)):
        if source is not None:
            found = pc.fill_null(pc.is_in(jcp, _ids(source)), False)
            modality = pc.if_else(found, label, modality)
    pert_type = table["pert_type"]
    is_control = pc.fill_null(pc.is_in(pert_type, pa.array(CONTROL_ROLES)), False)
    role = pc.if_else(is_control, pert_type, "trt")
    role = pc.if_else(pc.is_null(jcp), pa.scalar(None, pa.string()), role)
    result = pa.table(
        {
            "source": table["source"],
            "batch": table["batch"],
            "plate": table["plate"],
            "well": table["well"],
            "plate_type": table["plate_type"],
            "jcp2022": jcp,
            "modality": modality,
            "control_role": role,
            "control_name": table["control_name"],
            "symbol": table["symbol"],
            "inchikey": table["inchikey"],
        }
    ).cast(WELL_METADATA_SCHEMA)
    return result.sort_by([("source", "ascending"), ("plate", "ascending"), ("well", "ascending")])
