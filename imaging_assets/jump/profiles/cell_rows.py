"""A batch of joined cells as a record batch, in the vector layout or the former wide one."""

from __future__ import annotations

import pyarrow as pa

from imaging_assets.jump.profiles.feature_sets import FeatureSet
from imaging_assets.jump.profiles.join import JoinedCells
from imaging_assets.jump.profiles.layout import (
    FEATURE_SET,
    FEATURES,
    cell_ids,
    features_array,
    link_array,
    location_names,
)
from imaging_assets.jump.profiles.sites import Sites


def _key_columns(sites: Sites, joined: JoinedCells, keys: dict) -> dict[str, pa.Array]:
    index = pa.array(joined.image)
    site_key = sites.site_key.take(index)
    n = len(joined)
    columns = {
        "cell_id": cell_ids(site_key, joined.object_number),
        "site_key": site_key,
        "source": pa.array([keys["source"]] * n, pa.string()),
        "batch": pa.array([keys["batch"]] * n, pa.string()),
        "plate": pa.array([keys["plate"]] * n, pa.string()),
        "well": sites.well.take(index),
        "site": sites.site.take(index),
        "image_number": pa.array(sites.number[joined.image], pa.int64()),
        "object_number": pa.array(joined.object_number, pa.int64()),
    }
    for name, values in sites.metadata.items():
        columns[name] = values.take(index)
    return columns


def vector_batch(
    schema: pa.Schema,
    feature_set: FeatureSet,
    sites: Sites,
    joined: JoinedCells,
    keys: dict,
    file: str,
) -> pa.RecordBatch:
    """Keys, Image metadata, links and centres as columns; the features as one vector."""
    columns = _key_columns(sites, joined, keys)
    for name, values in joined.links.items():
        columns[name] = link_array(values, name, file)
    for name in location_names(feature_set):
        columns[name] = pa.array(joined.features[:, feature_set.position[name]], from_pandas=True)
    columns[FEATURE_SET] = pa.array([feature_set.id] * len(joined), pa.string())
    columns[FEATURES] = features_array(joined.features)
    return pa.RecordBatch.from_arrays([columns[f.name] for f in schema], schema=schema)


def wide_batch(
    schema: pa.Schema,
    feature_set: FeatureSet,
    sites: Sites,
    joined: JoinedCells,
    keys: dict,
    file: str,
) -> pa.RecordBatch:
    """The former layout: one float64 column per feature (NaN as null, as SQL gave it)."""
    columns = _key_columns(sites, joined, keys)
    for name, values in joined.links.items():
        columns[name] = link_array(values, name, file)
    for name, j in feature_set.position.items():
        columns[name] = pa.array(joined.features[:, j], from_pandas=True)
    return pa.RecordBatch.from_arrays([columns[f.name] for f in schema], schema=schema)
