"""The plate index: every plate of the JUMP plate table with the load_data file found for it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pyarrow as pa
import pyarrow.compute as pc

from imaging_assets.core.errors import InputError, MissingObjectError
from imaging_assets.core.stores import ObjectStore
from imaging_assets.jump import layout
from imaging_assets.jump.keys import parse_plate_partition_key, plate_partition_key
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


UNKNOWN_PLATE_TYPE = "UNKNOWN"
BATCH_TAG = "imaging_assets/batch"


def plate_row(
    plate_index: pa.Table, partition_key: str, run_tags: Mapping[str, str] | None = None
) -> dict:
    """The plate index row of a partition.

    A plate found by the sensor before the JUMP plate table lists it is not in the index yet; its
    run carries the batch as a tag, and the row is rebuilt from that (plate type UNKNOWN, load data
    located by listing the plate's folders). Otherwise an unknown plate is a clear error.
    """
    rows = plate_index.filter(pc.equal(plate_index["partition_key"], partition_key)).to_pylist()
    if rows:
        return rows[0]
    source, plate = parse_plate_partition_key(partition_key)
    batch = (run_tags or {}).get(BATCH_TAG)
    if batch:
        return {
            "source": source,
            "batch": batch,
            "plate": plate,
            "plate_type": UNKNOWN_PLATE_TYPE,
            "partition_key": partition_key,
            "load_data_key": None,
            "load_data_format": None,
        }
    raise InputError(
        "plate_index",
        f"plate {plate} of {source} is not in the plate index; re-materialize plate_index",
        column="partition_key",
        got=partition_key,
    )


def locate_load_data(store: ObjectStore, plate: dict) -> tuple[str, str]:
    """(key, format) of a plate's load data: from the index, else by listing its two folders."""
    if plate.get("load_data_key"):
        return plate["load_data_key"], plate["load_data_format"]
    source, batch, name = plate["source"], plate["batch"], plate["plate"]
    found = [
        *store.list_keys(f"{source}/{layout.LOAD_DATA_DIR}/{batch}/{name}/"),
        *store.list_keys(layout.load_data_orig_prefix(source, batch, name)),
    ]
    chosen = choose_load_data(found).get((source, batch, name))
    if chosen is None:
        raise MissingObjectError(
            store.uri(f"{source}/{layout.LOAD_DATA_DIR}/{batch}/{name}/"),
            "no load_data file for this plate in either format",
        )
    return chosen
