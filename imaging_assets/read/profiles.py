"""Profiles by feature name, from cell_profiles.lance or well_profiles.lance, in either layout.

The vector layout stores each row's features as one float64 vector (`features`) and the id of
the feature set it follows (`feature_set`); the ordered names live in feature_sets.lance beside
the dataset (imaging_assets.jump.profiles.feature_sets). These functions give the features back
under CellProfiler's names (`Cells_AreaShape_Area`, ...):

    from imaging_assets.read.profiles import cell_profile, cell_profiles, feature_matrix
    cells = lake.dataset("cell_profiles")
    cell_profiles(cells, "plate = 'BR00117006'", features=["Cells_AreaShape_Area"])  # pa.Table
    matrix, names = feature_matrix(cells, "plate = 'BR00117006'")   # (cells, features) float64
    cell_profile(cells, "source_4__BR00117006__A01__1__5")             # one cell, via the index
    to_wide_parquet(cells, "plate.parquet", "plate = 'BR00117006'")    # for CytoTable/pycytominer

Datasets written in the former layout (one Lance column per feature) read the same way, as do
datasets holding both (old plates beside new ones). Only the columns a call needs are passed to
Lance, never the full list of a wide dataset's columns (a cost that grows with its square).
Features a row's set lacks are null in tables and NaN in matrices; CellProfiler's own NaN
(NULL in its SQLite) is NaN.

DuckDB and Polars read the vectors directly; resolve a name to its position with the feature set:

    import duckdb, lance
    sets = lance.dataset(f"{lake_root}/feature_sets.lance").to_table()
    duckdb.sql('''
        SELECT c.cell_id, c.features[list_position(s.names, 'Cells_AreaShape_Area')] AS area
        FROM cells c JOIN sets s USING (feature_set)''')   # DuckDB lists are 1-based

    import polars as pl
    names = sets["names"][0].as_py()                            # one set; join on feature_set else
    pl.scan_pyarrow_dataset(cells).select(
        "cell_id", pl.col("features").list.get(names.index("Cells_AreaShape_Area")))

or export a plate to a wide Parquet file (to_wide_parquet) and query its named columns.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import lance
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from imaging_assets.core.lance_tables import quote
from imaging_assets.jump.profiles.feature_sets import FEATURE_SETS, FeatureSet, load_feature_sets
from imaging_assets.jump.profiles.layout import (
    FEATURE_SET,
    FEATURES,
    KEY_FIELDS,
    LOCATION_SUFFIXES,
)

FeatureSets = Mapping[str, FeatureSet] | str | None
EXPORT_NAMES = {
    "cell_id": "Metadata_cell_id",
    "site_key": "Metadata_site_key",
    "well_key": "Metadata_well_key",
    "source": "Metadata_Source",
    "batch": "Metadata_Batch",
    "plate": "Metadata_Plate",
    "well": "Metadata_Well",
    "site": "Metadata_Site",
    "image_number": "Metadata_ImageNumber",
    "object_number": "Metadata_ObjectNumber",
    FEATURE_SET: "Metadata_feature_set",
}
KEY_COLUMNS = (*(f.name for f in KEY_FIELDS), "well_key")
_CACHE: dict[tuple[str, str], FeatureSet] = {}  # (registry URI, id): sets never change
_LAYOUTS: dict[tuple[str, int], Layout] = {}


@dataclass(frozen=True)
class Layout:
    """Which columns of a profiles dataset are plain columns and which hold features."""

    vector: bool  # has `feature_set` and `features`
    columns: tuple[str, ...]  # keys, metadata, links, centres
    wide_features: tuple[str, ...]  # one column per feature (the former layout)


def layout_of(schema: pa.Schema) -> Layout:
    vector = FEATURES in schema.names and FEATURE_SET in schema.names
    columns, wide = [], []
    for field in schema:
        if field.name in (FEATURES, FEATURE_SET):
            continue
        is_centre = vector and field.name.endswith(LOCATION_SUFFIXES)
        if pa.types.is_floating(field.type) and not is_centre:
            wide.append(field.name)
        else:
            columns.append(field.name)
    return Layout(vector, tuple(columns), tuple(wide))


def _layout(dataset: lance.LanceDataset) -> Layout:
    """layout_of the dataset's version, built once (a wide schema takes a while to walk)."""
    key = (dataset.uri, dataset.version)
    if key not in _LAYOUTS:
        if len(_LAYOUTS) > 64:
            _LAYOUTS.clear()
        _LAYOUTS[key] = layout_of(dataset.schema)
    return _LAYOUTS[key]


def feature_sets_uri(dataset: lance.LanceDataset) -> str:
    """feature_sets.lance beside the dataset, under the same lake root."""
    return dataset.uri.rstrip("/").rsplit("/", 1)[0] + f"/{FEATURE_SETS}.lance"


def resolve_feature_sets(
    dataset: lance.LanceDataset,
    ids: Iterable[str],
    feature_sets: FeatureSets = None,
    storage_options: dict | None = None,
) -> dict[str, FeatureSet]:
    """The sets of these ids: from a mapping, or from the registry (default: beside `dataset`)."""
    ids = sorted(set(ids))
    if isinstance(feature_sets, Mapping):
        return {i: feature_sets[i] for i in ids}
    uri = feature_sets or feature_sets_uri(dataset)
    missing = [i for i in ids if (uri, i) not in _CACHE]
    if missing:
        options = storage_options or dataset.initial_storage_options
        for key, value in load_feature_sets(uri, missing, options).items():
            _CACHE[(uri, key)] = value
    return {i: _CACHE[(uri, i)] for i in ids}


def _union(sets: Iterable[FeatureSet]) -> list[str]:
    names: dict[str, None] = {}
    for feature_set in sets:
        names.update(dict.fromkeys(feature_set.names))
    return list(names)


def _set_ids(column: pa.ChunkedArray | pa.Array) -> list[str]:
    return [v for v in pc.unique(column).to_pylist() if v is not None]


def gather(
    set_ids: pa.Array,
    vectors: pa.Array,
    sets: Mapping[str, FeatureSet],
    names: list[str],
    out: np.ndarray,
    present: np.ndarray | None = None,
) -> None:
    """Write the named features of one chunk of rows into `out` (rows, len(names)).

    Rows whose set lacks a name keep what `out` holds (NaN); `present` (same shape, bool), when
    given, is set True where a row's set has the name. Rows without a set are left alone.
    """
    if len(set_ids) == 0:
        return
    offsets = vectors.offsets.to_numpy()
    values = vectors.values.to_numpy(zero_copy_only=False)
    ids = set_ids.to_numpy(zero_copy_only=False)
    for set_id in _set_ids(set_ids):
        feature_set = sets[set_id]
        rows = np.flatnonzero(ids == set_id)
        if list(feature_set.names) == names and len(rows) == len(ids):
            start, stop = offsets[0], offsets[-1]
            out[:] = values[start:stop].reshape(len(rows), len(names))
            if present is not None:
                present[:] = True
            continue
        index = np.array([feature_set.position.get(n, -1) for n in names], dtype=np.int64)
        columns = np.flatnonzero(index >= 0)
        if len(columns) == 0:
            continue
        positions = offsets[rows][:, None] + index[columns][None, :]
        out[np.ix_(rows, columns)] = values[positions]
        if present is not None:
            present[np.ix_(rows, columns)] = True


def _fill_wide(table: pa.Table, names: list[str], out: np.ndarray, rows: np.ndarray) -> None:
    """Rows of the former layout (no feature set): their named columns into `out`."""
    for j, name in enumerate(names):
        if name in table.column_names:
            column = table[name].to_numpy()
            out[rows, j] = column[rows]


def _names(features: list[str] | None, sets: Mapping[str, FeatureSet], layout: Layout) -> list[str]:
    if features is not None:
        known = set(layout.wide_features) | set(layout.columns)
        for feature_set in sets.values():
            known |= set(feature_set.names)
        unknown = [n for n in features if n not in known]
        if unknown and (sets or not layout.vector):
            raise KeyError(f"no feature {', '.join(map(repr, unknown[:5]))} in these profiles")
        return list(features)
    return _union(sets.values()) + [
        n for n in layout.wide_features if n not in _union(sets.values())
    ]


def _profiles(
    dataset: lance.LanceDataset,
    filter: str | None,
    features: list[str] | None,
    columns: list[str] | None,
    feature_sets: FeatureSets,
    storage_options: dict | None,
) -> pa.Table:
    layout = _layout(dataset)
    plain = list(layout.columns) if columns is None else list(columns)
    if not layout.vector:
        names = _names(features, {}, layout)
        wanted = plain + [n for n in names if n not in plain]
        everything = len(wanted) == len(dataset.schema.names)
        table = dataset.to_table(columns=None if everything else wanted, filter=filter)
        return table.select(wanted)
    head = dataset.to_table(columns=[FEATURE_SET], filter=filter)
    sets = resolve_feature_sets(dataset, _set_ids(head[FEATURE_SET]), feature_sets, storage_options)
    names = _names(features, sets, layout)
    from_columns = [n for n in names if n in layout.columns and n not in plain]
    from_vectors = [n for n in names if n not in layout.columns]
    old_rows = head[FEATURE_SET].null_count > 0
    wide = [n for n in from_vectors if n in layout.wide_features] if old_rows else []
    read = plain + from_columns + [FEATURE_SET, FEATURES] + wide
    table = dataset.to_table(columns=list(dict.fromkeys(read)), filter=filter)
    values = np.full((table.num_rows, len(from_vectors)), np.nan)
    present = np.zeros(values.shape, dtype=bool)
    start = 0
    set_ids, vectors = table[FEATURE_SET], table[FEATURES]
    for ids_chunk, vector_chunk in zip(set_ids.chunks, vectors.chunks, strict=True):
        stop = start + len(ids_chunk)
        gather(ids_chunk, vector_chunk, sets, from_vectors, values[start:stop], present[start:stop])
        start = stop
    if wide:
        old = np.flatnonzero(set_ids.is_null().to_numpy(zero_copy_only=False))
        _fill_wide(table, from_vectors, values, old)
        present[old] = True
    out = {name: table[name] for name in dict.fromkeys(plain + from_columns)}
    for j, name in enumerate(from_vectors):
        out[name] = pa.array(values[:, j], pa.float64(), mask=~present[:, j])
    order = list(dict.fromkeys(plain + [n for n in names if n not in plain]))
    return pa.table({name: out[name] for name in order})


def cell_profiles(
    dataset: lance.LanceDataset,
    filter: str | None = None,
    features: list[str] | None = None,
    columns: list[str] | None = None,
    *,
    feature_sets: FeatureSets = None,
    storage_options: dict | None = None,
) -> pa.Table:
    """Rows matching `filter`: `columns` (default: all but the vectors) and the named features
    (default: every feature of the rows' sets), one float64 column per name."""
    return _profiles(dataset, filter, features, columns, feature_sets, storage_options)


well_profiles = cell_profiles  # the same for per-well profiles (keyed by well_key)


def feature_matrix(
    dataset: lance.LanceDataset,
    filter: str | None = None,
    features: list[str] | None = None,
    *,
    feature_sets: FeatureSets = None,
    storage_options: dict | None = None,
) -> tuple[np.ndarray, list[str]]:
    """(rows, features) float64 of the rows matching `filter`, and the feature names.

    Filled batch by batch into one array (no second copy of the matrix); rows in scan order,
    the order cell_profiles returns them in.
    """
    layout = _layout(dataset)
    if not layout.vector:
        names = _names(features, {}, layout)
        every = features is None  # all of them: let Lance read every column, not a list of all
        table = dataset.to_table(columns=None if every else names, filter=filter)
        matrix = np.empty((table.num_rows, len(names)))
        for j, name in enumerate(names):
            matrix[:, j] = table[name].to_numpy(zero_copy_only=False)
        return matrix, names
    head = dataset.to_table(columns=[FEATURE_SET], filter=filter)
    sets = resolve_feature_sets(dataset, _set_ids(head[FEATURE_SET]), feature_sets, storage_options)
    names = _names(features, sets, layout)
    old_rows = head[FEATURE_SET].null_count > 0
    in_columns = set(layout.wide_features) | set(layout.columns)
    wide = [n for n in names if n in in_columns] if old_rows else []
    single = len(sets) == 1 and not old_rows and list(next(iter(sets.values())).names) == names
    shape = (head.num_rows, len(names))
    matrix = np.empty(shape) if single else np.full(shape, np.nan)
    start = 0
    for batch in dataset.to_batches(columns=[FEATURE_SET, FEATURES, *wide], filter=filter):
        stop = start + batch.num_rows
        gather(batch[FEATURE_SET], batch[FEATURES], sets, names, matrix[start:stop])
        if wide:
            table = pa.Table.from_batches([batch])
            old = np.flatnonzero(batch[FEATURE_SET].is_null().to_numpy(zero_copy_only=False))
            _fill_wide(table, names, matrix[start:stop], old)
        start = stop
    if start != head.num_rows:
        raise RuntimeError(f"{dataset.uri}: {start} rows read, {head.num_rows} expected")
    return matrix, names


def cell_profile(
    dataset: lance.LanceDataset,
    cell_id: str,
    columns: list[str] | None = None,
    *,
    feature_sets: FeatureSets = None,
    storage_options: dict | None = None,
) -> dict:
    """One cell's keys (or `columns`) and every feature by name, found through the BTREE index
    on cell_id.

    Other columns (links, centres, Image metadata, digests) only when asked for in `columns`:
    each column read costs ~20 us in Lance, and the site's metadata is one read away in
    site_images. Measured at 100,200 cells x 5,789 features (Lance 2.2 files): 1.8-2.3 ms with
    the keys, ~2.7 ms with the 29 columns that are not Image metadata.
    """
    layout = _layout(dataset)
    where = f"cell_id = {quote(cell_id)}"
    if columns is None:
        columns = [c for c in layout.columns if c in KEY_COLUMNS]
    read = [*columns, FEATURE_SET, FEATURES] if layout.vector else None
    table = dataset.to_table(columns=read, filter=where, limit=1)
    if table.num_rows == 0:
        raise KeyError(f"cell {cell_id!r} is not in {dataset.uri}")
    if layout.vector and table[FEATURE_SET][0].is_valid:
        set_id = table[FEATURE_SET][0].as_py()
        feature_set = resolve_feature_sets(dataset, [set_id], feature_sets, storage_options)[set_id]
        row = {name: table[name][0].as_py() for name in columns}
        values = table[FEATURES].chunk(0).values.to_numpy(zero_copy_only=False)
        row[FEATURE_SET] = set_id
        row.update(zip(feature_set.names, values.tolist(), strict=True))
        return row
    if layout.vector:  # a row of the former layout in a dataset holding both
        table = dataset.to_table(filter=where, limit=1)
    row = table.to_pylist()[0]
    row.pop(FEATURES, None)
    return row


def _export_batch(
    batch: pa.RecordBatch, layout: Layout, sets: Mapping[str, FeatureSet], names: list[str]
) -> pa.RecordBatch:
    plain = [n for n in layout.columns if n not in names]
    columns = {EXPORT_NAMES.get(n, n): batch[n] for n in plain}
    if layout.vector:
        values = np.full((batch.num_rows, len(names)), np.nan)
        gather(batch[FEATURE_SET], batch[FEATURES], sets, names, values)
        old = np.flatnonzero(batch[FEATURE_SET].is_null().to_numpy(zero_copy_only=False))
        if len(old):
            _fill_wide(pa.Table.from_batches([batch]), names, values, old)
        columns[EXPORT_NAMES[FEATURE_SET]] = batch[FEATURE_SET]
        for j, name in enumerate(names):
            columns[name] = pa.array(values[:, j])
    else:
        for name in names:
            columns[name] = batch[name]
    return pa.RecordBatch.from_pydict(columns)


def to_wide_parquet(
    dataset: lance.LanceDataset,
    path: str | Path,
    filter: str | None = None,
    *,
    features: list[str] | None = None,
    compression: str = "snappy",
    feature_sets: FeatureSets = None,
    storage_options: dict | None = None,
) -> int:
    """Write the rows as the wide table CytoTable writes and pycytominer reads; the row count.

    Features keep CellProfiler's names (one float64 column each, NaN where missing); keys become
    Metadata_* (plate -> Metadata_Plate, cell_id -> Metadata_cell_id, ...) so pycytominer's
    infer_cp_features tells them from features. Written batch by batch (bounded memory).
    """
    layout = _layout(dataset)
    sets: dict[str, FeatureSet] = {}
    if layout.vector:
        head = dataset.to_table(columns=[FEATURE_SET], filter=filter)
        ids = _set_ids(head[FEATURE_SET])
        sets = resolve_feature_sets(dataset, ids, feature_sets, storage_options)
    names = _names(features, sets, layout)
    needed = list(layout.columns) + (
        [FEATURE_SET, FEATURES] + [n for n in names if n in layout.wide_features]
        if layout.vector
        else [n for n in names if n not in layout.columns]
    )
    everything = len(needed) == len(dataset.schema.names)
    writer: pq.ParquetWriter | None = None
    rows = 0
    try:
        for batch in dataset.to_batches(columns=None if everything else needed, filter=filter):
            wide = _export_batch(batch, layout, sets, names)
            if writer is None:
                writer = pq.ParquetWriter(str(path), wide.schema, compression=compression)
            writer.write_batch(wide)
            rows += batch.num_rows
    finally:
        if writer is not None:
            writer.close()
    return rows
