"""Asset `load_data` (per plate): which raw object is which site and channel, in one long table."""

import time
from collections.abc import Mapping

import pyarrow as pa
import pyarrow.compute as pc
from dagster import AssetExecutionContext, Output, asset

from imaging_assets.core.errors import InputError, MissingObjectError
from imaging_assets.core.stores import ObjectStore
from imaging_assets.defs.common.catalog import OWNERS, tags
from imaging_assets.defs.common.stores import SourceResource
from imaging_assets.defs.jump.metadata import table_metadata
from imaging_assets.defs.jump.partitions import plates_partitions
from imaging_assets.jump import layout
from imaging_assets.jump import load_data as load_data_logic
from imaging_assets.jump.keys import parse_plate_partition_key
from imaging_assets.jump.plates import choose_load_data

GROUP = "plates"


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


@asset(
    group_name=GROUP,
    partitions_def=plates_partitions,
    kinds={"arrow", "parquet"},
    owners=OWNERS,
    tags=tags("jump", "parquet"),
    code_version="2",  # bump when parsing or validation changes what is written
    description=(
        "One row per (site, channel) of a plate: source, batch, plate, well, site, channel, the raw "
        "object's URI under the source root, its illumination function, and the well's perturbation "
        "and control role (wells without metadata kept, has_metadata = false). Fails, naming the "
        "file, column and row, when a row names another plate or source than the partition, a "
        "key part is malformed, or a location is not under the source root."
    ),
)
def load_data(
    context: AssetExecutionContext,
    plate_index: pa.Table,
    well_metadata: pa.Table,
    source: SourceResource,
) -> Output:
    plate = plate_row(plate_index, context.partition_key, context.run.tags)
    store = source.store()
    started = time.perf_counter()
    load_data_key, load_data_format = locate_load_data(store, plate)
    fetched = store.read(load_data_key)
    table = load_data_logic.normalize_load_data(
        fetched.data,
        fetched.uri,
        load_data_format,
        source=plate["source"],
        batch=plate["batch"],
        plate=plate["plate"],
    )
    table = load_data_logic.resolve_uris(table, store.root, file=fetched.uri)
    plate_wells = well_metadata.filter(
        pc.and_(
            pc.equal(well_metadata["source"], plate["source"]),
            pc.equal(well_metadata["plate"], plate["plate"]),
        )
    )
    table = load_data_logic.join_well_metadata(table, plate_wells)
    seconds = time.perf_counter() - started
    wells_without = len(load_data_logic.wells_without_metadata(table))
    sites = pc.count_distinct(table["site_key"]).as_py()
    channels = sorted(set(table["channel"].to_pylist()))
    if wells_without:
        context.log.warning(
            f"{context.partition_key}: {wells_without} wells have no row in well metadata; "
            "kept with has_metadata = false"
        )
    context.log.info(f"{fetched.uri}: {sites} sites x {len(channels)} channels in {seconds:.2f} s")
    return Output(
        table,
        metadata={
            **table_metadata(table, seconds),
            "load_data_uri": fetched.uri,
            "format": load_data_format,
            "sites": sites,
            "wells": pc.count_distinct(table["well"]).as_py(),
            "channels": ", ".join(channels),
            "wells_without_metadata": wells_without,
        },
    )
