"""Group `plates`: the plate index and the dynamic partitions "plates" registered from it."""

import time

import pyarrow as pa
import pyarrow.compute as pc
from dagster import AssetExecutionContext, Config, MetadataValue, Output, asset
from pydantic import Field

from imaging_assets.defs.common.catalog import OWNERS, tags
from imaging_assets.defs.common.stores import SourceResource
from imaging_assets.defs.jump.metadata import table_metadata
from imaging_assets.defs.jump.partitions import PLATES_PARTITIONS_NAME
from imaging_assets.jump import plates as jump_plates_logic
from imaging_assets.jump.discovery import load_data_keys_for

GROUP = "plates"


class PlateIndexConfig(Config):
    """Which plates become partitions. Empty lists mean all."""

    sources: list[str] = Field(default_factory=list, description="Only these sources")
    plate_types: list[str] = Field(default_factory=list, description="Only these plate types")
    max_plates: int = Field(default=0, ge=0, description="At most this many plates (0: no limit)")


def filter_plates(
    table: pa.Table, config: PlateIndexConfig, source_column: str, type_column: str
) -> pa.Table:
    """The rows of the JUMP plate table (or the index) that the config selects."""
    if config.sources:
        table = table.filter(pc.is_in(table[source_column], pa.array(config.sources)))
    if config.plate_types:
        table = table.filter(pc.is_in(table[type_column], pa.array(config.plate_types)))
    if config.max_plates:
        table = table.slice(0, config.max_plates)
    return table


@asset(
    group_name=GROUP,
    kinds={"arrow", "parquet"},
    owners=OWNERS,
    tags=tags("jump", "parquet"),
    code_version="1",
    description=(
        "One row per plate: source, batch, plate, plate type, partition key and the load_data file "
        "found for it. Registers every plate that has load data as a partition of `plates`."
    ),
)
def plate_index(
    context: AssetExecutionContext,
    config: PlateIndexConfig,
    jump_plates: pa.Table,
    source: SourceResource,
) -> Output:
    store = source.store()
    plates = filter_plates(jump_plates, config, "Metadata_Source", "Metadata_PlateType")
    started = time.perf_counter()
    source_batches = set(
        zip(
            plates["Metadata_Source"].to_pylist(), plates["Metadata_Batch"].to_pylist(), strict=True
        )
    )
    found = load_data_keys_for(store, source_batches)
    chosen = jump_plates_logic.choose_load_data(found)
    index = jump_plates_logic.plate_index(plates, chosen)
    seconds = time.perf_counter() - started

    with_data = index.filter(pc.is_valid(index["load_data_key"]))
    keys = with_data["partition_key"].to_pylist()
    existing = set(context.instance.get_dynamic_partitions(PLATES_PARTITIONS_NAME))
    new_keys = [key for key in keys if key not in existing]
    if new_keys:
        context.instance.add_dynamic_partitions(PLATES_PARTITIONS_NAME, new_keys)
    missing = index.num_rows - with_data.num_rows
    context.log.info(
        f"{len(source_batches)} batches listed in {seconds:.2f} s: {with_data.num_rows} plates with "
        f"load data ({len(new_keys)} new partitions), {missing} without"
    )
    return Output(
        index,
        metadata={
            **table_metadata(index, seconds),
            "plates_with_load_data": with_data.num_rows,
            "plates_without_load_data": missing,
            "partitions_added": len(new_keys),
            "batches_listed": len(source_batches),
            "new_partitions": MetadataValue.json(new_keys[:50]),
        },
    )
