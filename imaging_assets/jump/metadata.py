"""The JUMP metadata tables (jump-cellpainting/datasets, metadata/) as typed Arrow tables.

Strict on purpose: a renamed or missing column, or a value that does not parse, stops the pipeline
with the file, column and row, instead of flowing downstream as nulls.
"""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from imaging_assets.errors import InputError
from imaging_assets.jump.csv import decompress, header, read_typed_csv
from imaging_assets.schemas import METADATA_SCHEMAS, WELL_METADATA_SCHEMA

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


def file_name(name: str) -> str:
    """The file of a table in the metadata folder (e.g. "plate" -> "plate.csv.gz")."""
    if name not in FILE_NAMES:
        raise KeyError(f"unknown JUMP metadata table {name!r}; known: {', '.join(FILE_NAMES)}")
    return FILE_NAMES[name]


def schema(name: str) -> pa.Schema:
    file_name(name)
    return METADATA_SCHEMAS[name]


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
    extra = [c for c in table.column_names if c not in expected.names]
    return table.select(expected.names + extra)


def _frame(table: pa.Table | None, columns: list[str]) -> pd.DataFrame:
    if table is None:
        return pd.DataFrame({c: pd.Series(dtype="string") for c in columns})
    return table.select(columns).to_pandas(types_mapper=pd.ArrowDtype).drop_duplicates(columns[0])


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
    found in, else the plate type's, else "unknown". Columns are chosen explicitly: no _x/_y.
    """
    well_frame = wells.select(
        ["Metadata_Source", "Metadata_Plate", "Metadata_Well", "Metadata_JCP2022"]
    ).to_pandas(types_mapper=pd.ArrowDtype)
    plate_frame = (
        plates.select(["Metadata_Plate", "Metadata_Batch", "Metadata_PlateType"])
        .to_pandas(types_mapper=pd.ArrowDtype)
        .drop_duplicates("Metadata_Plate")
    )
    unknown = ~well_frame["Metadata_Plate"].isin(plate_frame["Metadata_Plate"])
    if unknown.any():
        first = well_frame[unknown].iloc[0]
        raise InputError(
            "well.csv.gz",
            f"well {first['Metadata_Well']} names plate {first['Metadata_Plate']}, which the plate "
            "table does not list",
            column="Metadata_Plate",
            row=int(unknown.to_numpy().nonzero()[0][0]) + 1,
            got=str(first["Metadata_Plate"]),
        )
    frame = well_frame.merge(plate_frame, on="Metadata_Plate", how="left", validate="many_to_one")

    controls = _frame(
        perturbation_control, ["Metadata_JCP2022", "Metadata_pert_type", "Metadata_Name"]
    )
    frame = frame.merge(controls, on="Metadata_JCP2022", how="left", validate="many_to_one")
    compound = _frame(compounds, ["Metadata_JCP2022", "Metadata_InChIKey"])
    frame = frame.merge(compound, on="Metadata_JCP2022", how="left", validate="many_to_one")
    symbols = pd.concat(
        [
            _frame(orfs, ["Metadata_JCP2022", "Metadata_Symbol"]),
            _frame(crisprs, ["Metadata_JCP2022", "Metadata_Symbol"]),
        ]
    ).drop_duplicates("Metadata_JCP2022")
    frame = frame.merge(symbols, on="Metadata_JCP2022", how="left", validate="many_to_one")

    jcp = frame["Metadata_JCP2022"]
    by_plate_type = frame["Metadata_PlateType"].map(MODALITY_BY_PLATE_TYPE).fillna("unknown")
    modality = by_plate_type.astype(object)
    for label, table in (("compound", compounds), ("orf", orfs), ("crispr", crisprs)):
        if table is not None:
            ids = set(table["Metadata_JCP2022"].to_pylist())
            modality = modality.where(~jcp.isin(ids).fillna(False).astype(bool), label)
    role = frame["Metadata_pert_type"].astype(object)
    role = role.where(role.isin(CONTROL_ROLES), "trt")
    role = role.where(jcp.notna(), None)

    result = pa.table(
        {
            "source": frame["Metadata_Source"].astype(object),
            "batch": frame["Metadata_Batch"].astype(object),
            "plate": frame["Metadata_Plate"].astype(object),
            "well": frame["Metadata_Well"].astype(object),
            "plate_type": frame["Metadata_PlateType"].astype(object),
            "jcp2022": jcp.astype(object),
            "modality": modality.astype(object),
            "control_role": role,
            "control_name": frame["Metadata_Name"].astype(object),
            "symbol": frame["Metadata_Symbol"].astype(object),
            "inchikey": frame["Metadata_InChIKey"].astype(object),
        },
        schema=WELL_METADATA_SCHEMA,
    )
    return result.sort_by([("source", "ascending"), ("plate", "ascending"), ("well", "ascending")])
