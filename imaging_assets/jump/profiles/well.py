"""CellProfiler per-well profiles (one parquet per plate) as a typed table keyed like site_images."""

from __future__ import annotations

import io

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from imaging_assets.core.errors import InputError
from imaging_assets.jump.keys import SEPARATOR
from imaging_assets.jump.profiles.feature_sets import FeatureSet
from imaging_assets.jump.profiles.layout import features_array, vector_schema

KEY_COLUMNS = ("well_key", "source", "batch", "plate", "well")


def read_well_profiles(data: bytes, file: str, *, source: str, batch: str, plate: str) -> pa.Table:
    """Keys, then Metadata_* as text, then every feature as float64 (nulls kept).

    float64, not float32: per-well tables are small and CellProfiler computes in double, so
    keeping them exact costs little and lets the numbers match the source file.
    """
    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowInvalid, OSError) as error:
        raise InputError(file, f"not a readable parquet file ({error})") from error
    if table.num_rows == 0:
        raise InputError(file, "no rows", expected="one row per well")
    for column in ("Metadata_Plate", "Metadata_Well"):
        if column not in table.column_names:
            raise InputError(file, "missing column", column=column)
    metadata = [c for c in table.column_names if c.startswith("Metadata_")]
    features = [c for c in table.column_names if not c.startswith("Metadata_")]
    columns: dict[str, pa.ChunkedArray] = {}
    for name in metadata:
        columns[name] = table[name].cast(pa.string())
    plates = set(columns["Metadata_Plate"].to_pylist())
    if plates != {plate}:
        raise InputError(
            file,
            "profiles of another plate",
            column="Metadata_Plate",
            expected=plate,
            got=sorted(plates),
        )
    for name in features:
        try:
            columns[name] = table[name].cast(pa.float64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as error:
            raise InputError(
                file,
                "feature column is not numeric",
                column=name,
                expected="float",
                got=str(table[name].type),
            ) from error
    wells = columns["Metadata_Well"]
    n = table.num_rows
    keys = {
        "well_key": pc.binary_join_element_wise(
            pa.array([source] * n), pa.array([plate] * n), wells, SEPARATOR
        ),
        "source": pa.array([source] * n, pa.string()),
        "batch": pa.array([batch] * n, pa.string()),
        "plate": pa.array([plate] * n, pa.string()),
        "well": wells,
    }
    return pa.table({**keys, **columns})


def well_profiles_vector(
    data: bytes, file: str, *, source: str, batch: str, plate: str
) -> tuple[pa.Table, FeatureSet]:
    """The same rows in the vector layout: keys, Metadata_* as text, `feature_set`, `features`.

    JUMP's per-well profiles have thousands of features, so they get the layout of the cells
    (layout.py); the returned feature set must be stored before the rows are committed.
    """
    wide = read_well_profiles(data, file, source=source, batch=batch, plate=plate)
    names = [n for n in wide.column_names if n not in KEY_COLUMNS and not n.startswith("Metadata_")]
    feature_set = FeatureSet.from_names(names)
    matrix = np.empty((wide.num_rows, len(names)), dtype=np.float64)
    for j, name in enumerate(names):
        matrix[:, j] = wide[name].to_numpy(zero_copy_only=False)
    keep = [n for n in wide.column_names if n not in names]
    schema = vector_schema(
        [wide.schema.field(n) for n in KEY_COLUMNS],
        [n for n in keep if n not in KEY_COLUMNS],
        [],
        FeatureSet((), ()),
    )
    columns = [wide[n].combine_chunks() for n in keep]
    columns += [
        pa.array([feature_set.id] * wide.num_rows, pa.string()),
        features_array(matrix),
    ]
    return pa.Table.from_arrays(columns, schema=schema), feature_set
