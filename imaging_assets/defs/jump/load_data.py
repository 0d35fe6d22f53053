"""Asset `load_data` (per plate): which raw object is which site and channel, in one long table."""

import time

import pyarrow as pa
import pyarrow.compute as pc
from dagster import AssetExecutionContext, Config, Output, asset
from pydantic import Field

from imaging_assets.defs.common.catalog import OWNERS, tags
from imaging_assets.defs.common.stores import SourceResource
from imaging_assets.defs.jump.metadata import table_metadata
from imaging_assets.defs.jump.partitions import plates_partitions
from imaging_assets.jump import load_data as load_data_logic
from imaging_assets.jump.channels import CELL_PAINTING_CHANNELS
from imaging_assets.jump.plates import locate_load_data, plate_row

GROUP = "plates"


class LoadDataConfig(Config):
    channels: list[str] = Field(
        default_factory=lambda: list(CELL_PAINTING_CHANNELS),
        description=(
            "Channels every plate must have an image column for (the channels site_images "
            "processes): a load_data file missing one is refused here, naming the column"
        ),
    )


@asset(
    group_name=GROUP,
    partitions_def=plates_partitions,
    kinds={"arrow", "parquet"},
    owners=OWNERS,
    tags=tags("jump", "parquet"),
    code_version="3",  # bump when parsing or validation changes what is written
    description=(
        "One row per (site, channel) of a plate: source, batch, plate, well, site, channel, the raw "
        "object's URI under the source root, its illumination function, and the well's perturbation "
        "and control role (wells without metadata kept, has_metadata = false). Fails, naming the "
        "file, column and row, when a row names another plate or source than the partition, a "
        "key part is malformed, a channel's image column is missing, or a location is not under "
        "the source root."
    ),
)
def load_data(
    context: AssetExecutionContext,
    config: LoadDataConfig,
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
        channels=config.channels,
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
            f"{context.partition_key}: {wells_without} "
            f"{'well has' if wells_without == 1 else 'wells have'} no row in well metadata; "
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
