"""The plate index: every plate of the JUMP plate table with the load_data file found for it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pyarrow as pa

from imaging_assets.jump import layout
from imaging_assets.jump.keys import plate_partition_key
from imaging_assets.jump.schemas import PLATE_INDEX_SCHEMA

PlateId = tuple[str, str, str]  # (source, batch, plate)

# Preference when a plate has several: the current CSV with illumination, the plain CSV, then the
# older parquet (kept under load_data_csv_orig/ in the bucket).
_PREFERENCE = {
    (layout.LOAD_DATA_DIR, layout.LOAD_DATA_WITH_ILLUM_FILE): (0, "csv"),
    (layout.LOAD_DATA_DIR, layout.LOAD_DATA_FILE): (1, "csv"),
    (layout.LOAD_DATA_ORIG_DIR, layout.LOAD_DATA_ORIG_FILE): (2, "parquet"),
}


def _parse(key: str) -> tuple[PlateId, int, str] | None:
    """(plate id, preference, format) of a load_data key relative to the source root."""
    parts = key.strip("/").split("/")
    if len(parts) < 6:
        return None
    source, folder, batch, plate, name = (
        parts[-6],
        "/".join(parts[-5:-3]),
        parts[-3],
        parts[-2],
        parts[-1],
    )
    ranked = _PREFERENCE.get((folder, name))
    if ranked is None:
        return None
    return (source, batch, plate), ranked[0], ranked[1]


def choose_load_data(found_keys: Iterable[str]) -> dict[PlateId, tuple[str, str]]:
    """The preferred load_data file of each plate among the keys found: {(s, b, p): (key, fmt)}."""
    best: dict[PlateId, tuple[int, str, str]] = {}
    for key in found_keys:
        parsed = _parse(key)
        if parsed is None:
            continue
        plate, rank, fmt = parsed
        if plate not in best or rank < best[plate][0]:
            best[plate] = (rank, key, fmt)
    return {plate: (key, fmt) for plate, (_, key, fmt) in best.items()}


def plate_index(plates: pa.Table, load_data: Mapping[PlateId, tuple[str, str]]) -> pa.Table:
    """One row per plate of the JUMP plate table; load_data_key is null when none was found."""
    rows: dict[str, list] = {name: [] for name in PLATE_INDEX_SCHEMA.names}
    columns = ["Metadata_Source", "Metadata_Batch", "Metadata_Plate", "Metadata_PlateType"]
    for source, batch, plate, plate_type in zip(
        *(plates[c].to_pylist() for c in columns), strict=True
    ):
        key, fmt = load_data.get((source, batch, plate), (None, None))
        for name, value in zip(
            PLATE_INDEX_SCHEMA.names,
            (source, batch, plate, plate_type, plate_partition_key(source, plate), key, fmt),
            strict=True,
        ):
            rows[name].append(value)
    return pa.table(rows, schema=PLATE_INDEX_SCHEMA)
