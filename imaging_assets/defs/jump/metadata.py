"""Group `metadata`: the JUMP metadata tables as typed Arrow tables, and `well_metadata`.

One asset per table, so a user sees each table's rows and schema in the UI and re-reads only what
changed. Parsing and typing live in imaging_assets.jump.metadata; these assets only fetch and log.
"""

import time

import pyarrow as pa
from dagster import AssetExecutionContext, AssetsDefinition, MetadataValue, Output, asset

from imaging_assets.core.errors import MissingObjectError
from imaging_assets.defs.common.catalog import OWNERS, table_catalog, tags
from imaging_assets.defs.common.stores import MetadataResource
from imaging_assets.jump import metadata as jump_metadata

GROUP = "metadata"

# asset name -> JUMP table name (the file in jump-cellpainting/datasets' metadata/ folder)
METADATA_ASSETS: dict[str, str] = {
    "jump_plates": "plate",
    "jump_wells": "well",
    "jump_compounds": "compound",
    "jump_compound_sources": "compound_source",
    "jump_orfs": "orf",
    "jump_crisprs": "crispr",
    "jump_controls": "perturbation_control",
    "jump_microscopes": "microscope_config",
    "jump_microscope_filters": "microscope_filter",
    "jump_cellprofiler_versions": "cellprofiler_version",
}


def table_metadata(table: pa.Table, seconds: float | None = None) -> dict:
    """Rows and typed, described columns for the Dagster catalog."""
    meta: dict = {"rows": table.num_rows, **table_catalog(table.schema, table.num_rows)}
    if seconds is not None:
        meta["seconds"] = round(seconds, 3)
        if seconds > 0:
            meta["rows_per_second"] = round(table.num_rows / seconds, 1)
    return meta


def _metadata_table_asset(asset_name: str, table_name: str) -> AssetsDefinition:
    file_name = jump_metadata.file_name(table_name)
    optional = table_name in jump_metadata.OPTIONAL_TABLES
    required = ", ".join(jump_metadata.file_name(n) for n in jump_metadata.REQUIRED_TABLES)
    note = (
        " Optional (the pipeline does not use it): when the file is absent, an empty table with "
        "its schema, and metadata `missing` = true."
        if optional
        else " Required: the metadata job fails when the file is absent."
    )

    @asset(
        name=asset_name,
        group_name=GROUP,
        description=f"The JUMP `{file_name}` table, typed and validated.{note}",
        kinds={"arrow", "parquet"},
        owners=OWNERS,
        tags=tags("jump", "parquet"),
        code_version="2",
    )
    def _table(context: AssetExecutionContext, jump_metadata_source: MetadataResource) -> Output:
        store = jump_metadata_source.store()
        started = time.perf_counter()
        try:
            fetched = store.read(file_name)
        except MissingObjectError as error:
            if not optional:
                raise MissingObjectError(
                    error.uri,
                    f"{file_name} is a required JUMP metadata table; the metadata folder "
                    f"{store.root} must hold all of: {required}",
                ) from error
            context.log.warning(
                f"{error.uri}: optional JUMP metadata table {file_name} is missing; "
                "materializing an empty table with its schema"
            )
            table = jump_metadata.empty_table(table_name)
            return Output(
                table, metadata={**table_metadata(table), "source": error.uri, "missing": True}
            )
        table = jump_metadata.read_metadata_table(table_name, fetched.data, fetched.uri)
        seconds = time.perf_counter() - started
        context.log.info(f"{fetched.uri}: {table.num_rows:,} rows in {seconds:.2f} s")
        return Output(
            table,
            metadata={**table_metadata(table, seconds), "source": fetched.uri, "missing": False},
        )

    return _table


metadata_table_assets = [
    _metadata_table_asset(asset_name, table_name)
    for asset_name, table_name in METADATA_ASSETS.items()
]


@asset(
    group_name=GROUP,
    kinds={"arrow", "parquet"},
    owners=OWNERS,
    tags=tags("jump", "parquet"),
    code_version="2",
    description=(
        "One row per (source, plate, well): perturbation, modality and control role "
        "(trt / poscon / negcon / empty) from perturbation_control."
    ),
)
def well_metadata(
    context: AssetExecutionContext,
    jump_wells: pa.Table,
    jump_plates: pa.Table,
    jump_controls: pa.Table,
    jump_compounds: pa.Table,
    jump_orfs: pa.Table,
    jump_crisprs: pa.Table,
) -> Output:
    started = time.perf_counter()
    table = jump_metadata.well_metadata(
        jump_wells,
        jump_plates,
        jump_controls,
        compounds=jump_compounds,
        orfs=jump_orfs,
        crisprs=jump_crisprs,
    )
    seconds = time.perf_counter() - started
    roles = table.group_by("control_role").aggregate([("well", "count")]).to_pylist()
    context.log.info(f"well_metadata: {table.num_rows:,} wells in {seconds:.2f} s")
    return Output(
        table,
        metadata={
            **table_metadata(table, seconds),
            "wells_by_role": MetadataValue.json(
                {str(r["control_role"]): r["well_count"] for r in roles}
            ),
        },
    )
