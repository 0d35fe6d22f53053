"""The columns of a profile row: keys and metadata as columns, the features as one vector.

Why one vector column: at JUMP's width (~5,800 features per cell) one Lance column per feature
makes every row read pay per column (a cell by row id: 116 ms at 3,000 columns vs 0.3 ms as one
vector). `features` is a large_list<float64> (float64: CellProfiler's own values, exactly;
large: a plate's values exceed 2^31) and `feature_set` the content id of the ordered names it
follows (feature_sets.py), so plates of different sources, with different features, share one
dataset. Links (ObjectNumber, *_Parent_*) stay int64 columns, and each compartment's
Location_Center_X/Y is also a float64 column (crops and plots read centres without the vectors).

The wide layout (one float64 column per feature) is kept for the functions that wrote it.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from imaging_assets.core.errors import InputError
from imaging_assets.jump.keys import SEPARATOR
from imaging_assets.jump.profiles.feature_sets import FeatureSet

KEY_FIELDS = [
    pa.field("cell_id", pa.string()),
    pa.field("site_key", pa.string()),
    pa.field("source", pa.string()),
    pa.field("batch", pa.string()),
    pa.field("plate", pa.string()),
    pa.field("well", pa.string()),
    pa.field("site", pa.string()),
    pa.field("image_number", pa.int64()),
    pa.field("object_number", pa.int64()),
]
FEATURE_SET = "feature_set"
FEATURES = "features"
FEATURE_FIELDS = [
    pa.field(FEATURE_SET, pa.string()),
    pa.field(FEATURES, pa.large_list(pa.float64())),
]
LOCATION_SUFFIXES = ("_Location_Center_X", "_Location_Center_Y")
CELL_COMPARTMENT_KEY = b"imaging_assets:cell_compartment"
LAYOUT_KEY = b"imaging_assets:profile_layout"
VECTOR_LAYOUT = b"vector"


def location_names(feature_set: FeatureSet) -> list[str]:
    """The features also kept as columns: where each compartment's object is."""
    return [n for n in feature_set.names if n.endswith(LOCATION_SUFFIXES)]


def vector_schema(
    key_fields: list[pa.Field],
    metadata_names: list[str],
    link_names: list[str],
    feature_set: FeatureSet,
    metadata: dict[bytes, bytes] | None = None,
) -> pa.Schema:
    fields = list(key_fields)
    fields += [pa.field(n, pa.string()) for n in metadata_names]
    fields += [pa.field(n, pa.int64()) for n in link_names]
    fields += [pa.field(n, pa.float64()) for n in location_names(feature_set)]
    return pa.schema(
        fields + FEATURE_FIELDS, metadata={**(metadata or {}), LAYOUT_KEY: VECTOR_LAYOUT}
    )


def features_array(matrix: np.ndarray) -> pa.LargeListArray:
    """(rows, n) float64 -> one vector per row (zero-copy from a C-contiguous matrix)."""
    matrix = np.ascontiguousarray(matrix, dtype=np.float64)
    rows, width = matrix.shape
    offsets = pa.array(np.arange(0, rows * width + 1, width, dtype=np.int64))
    return pa.LargeListArray.from_arrays(offsets, pa.array(matrix.reshape(-1)))


def link_array(values: np.ndarray, name: str, file: str) -> pa.Array:
    """float64 links (NaN: null) as int64; a fraction is an InputError."""
    array = pa.array(values, pa.float64(), from_pandas=True)
    try:
        return array.cast(pa.int64())
    except pa.ArrowInvalid as error:
        raise InputError(file, "a link is not a whole number", column=name) from error


def text_array(values: list) -> pa.Array:
    return pa.array([None if v is None else str(v) for v in values], pa.string())


def cell_ids(site_keys: pa.Array, object_numbers: np.ndarray) -> pa.Array:
    return pc.binary_join_element_wise(
        site_keys, pa.array(object_numbers, pa.int64()).cast(pa.string()), SEPARATOR
    )
