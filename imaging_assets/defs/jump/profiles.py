"""Assets `well_profiles`, `cell_profiles` and `cell_crops` (per plate), each a Lance dataset.

Profiles carry the same keys as site_images (source, plate, well, site_key, cell_id), so a feature
row joins back to its images, and the images to their raw objects. Parsing, the single-cell join,
digest verification and cropping live in imaging_assets.jump.profiles; these assets fetch, stream, commit
write one commit per plate (none when nothing changed) and report.
"""

import time
from collections.abc import Iterator
from typing import Any

import lance
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from imaging_assets.core import lance_tables
from imaging_assets.core.errors import MissingObjectError
from imaging_assets.defs.common.catalog import OWNERS, for_partition, table_catalog, tags
from imaging_assets.defs.common.lake_writes import RerunGuardConfig, write, write_metadata
from imaging_assets.defs.common.stores import LakeResource, SourceResource
from imaging_assets.defs.jump.partitions import plates_partitions
from imaging_assets.jump import layout
from imaging_assets.jump.datasets import (
    CELL_CROPS,
    CELL_PROFILES,
    SITE_IMAGES,
    WELL_PROFILES,
    plate_filter,
    plate_partition,
)
from imaging_assets.jump.images import site_array
from imaging_assets.jump.plates import plate_row
from imaging_assets.jump.profiles import (
    cell_crops_schema,
    cell_profiles_schema_from_sqlite,
    crop_cells,
    digest_summary,
    image_digests,
    iter_cell_profiles,
    read_well_profiles,
    verify_digests,
)

GROUP = "profiles"
PROFILES_CODE_VERSION = "2"  # bump when parsing, joins or cropping change what is written


def _no_profiles(
    context: AssetExecutionContext, what: str, uri: str, lake: LakeResource, dataset: str
) -> dict:
    """A plate without CellProfiler outputs is normal (images-only collections): say so, keep rows."""
    existing = lance_tables.open_dataset(lake.dataset_uri(dataset), lake.storage_options())
    kept = (
        0 if existing is None else existing.count_rows(filter=plate_filter(context.partition_key))
    )
    catalog = (
        {"dagster/row_count": kept}
        if existing is None
        else table_catalog(existing.schema, kept)  # the plate's rows, as an earlier run left them
    )
    context.log.warning(
        f"{context.partition_key}: no {what} at {uri}; nothing written"
        + (f", the {kept} rows an earlier run wrote are kept" if kept else "")
    )
    return {
        **catalog,
        "profiles_found": False,
        "status": MetadataValue.text(f"no {what} for this plate"),
        "expected_at": MetadataValue.path(uri),
        "rows": 0,
        "rows_kept_from_earlier_runs": kept,
    }


class WellProfilesConfig(RerunGuardConfig):
    """Per-well profiles of one plate."""


@asset(
    group_name=GROUP,
    partitions_def=plates_partitions,
    kinds={"lance"},
    owners=OWNERS,
    tags=tags("jump", "lance"),
    code_version=PROFILES_CODE_VERSION,
    pool="source_reads",
    description=(
        "CellProfiler per-well profiles of the plate in well_profiles.lance: features as floats, "
        "Metadata_* as text, keyed by source, plate, well (well_key) like site_images."
    ),
)
def well_profiles(
    context: AssetExecutionContext,
    config: WellProfilesConfig,
    plate_index: pa.Table,
    source: SourceResource,
    lake: LakeResource,
) -> MaterializeResult:
    plate = plate_row(plate_index, context.partition_key, context.run.tags)
    store = source.store()
    started = time.perf_counter()
    key = layout.well_profiles_key(plate["source"], plate["batch"], plate["plate"])
    try:
        fetched = store.read(key)
    except MissingObjectError:
        return MaterializeResult(
            metadata=_no_profiles(context, "per-well profiles", store.uri(key), lake, WELL_PROFILES)
        )
    table = read_well_profiles(
        fetched.data,
        fetched.uri,
        source=plate["source"],
        batch=plate["batch"],
        plate=plate["plate"],
    )
    written = write(
        context,
        lake,
        plate_partition(WELL_PROFILES, context.partition_key),
        table.schema,
        table.to_batches(),
        evolve=True,
        max_removed_fraction=config.max_removed_fraction,
    )
    seconds = time.perf_counter() - started
    context.log.info(
        f"{fetched.uri}: {table.num_rows} wells in {seconds:.2f} s -> {written.uri} "
        f"({written.outcome})"
    )
    return MaterializeResult(
        metadata={
            **write_metadata(written, table.schema, seconds, "rows"),
            "profiles_found": True,
            "features": sum(1 for name in table.column_names if not name.startswith("Metadata_")),
            "source_uri": fetched.uri,
        }
    )


class CellProfilesConfig(RerunGuardConfig):
    """Streaming of the CellProfiler backend: memory is bounded by one batch of images."""

    images_per_batch: int = Field(default=16, ge=1, description="Whole images per record batch")


def _site_md5s(lake: LakeResource, partition_filter: str) -> pa.Table:
    """site_key and raw md5 per channel of the plate's images (none yet: an empty table)."""
    dataset = lance_tables.open_dataset(lake.dataset_uri(SITE_IMAGES), lake.storage_options())
    if dataset is None:
        return pa.table({"site_key": pa.array([], pa.string())})
    columns = ["site_key"] + [name for name in dataset.schema.names if name.endswith("_raw_md5")]
    return dataset.to_table(columns=columns, filter=partition_filter)


@asset(
    group_name=GROUP,
    partitions_def=plates_partitions,
    kinds={"lance"},
    owners=OWNERS,
    tags=tags("jump", "lance"),
    code_version=PROFILES_CODE_VERSION,
    pool="source_reads",
    deps=[AssetKey(SITE_IMAGES)],
    check_specs=[
        AssetCheckSpec(
            "profile_digests_match_images",
            asset=CELL_PROFILES,
            description=(
                "CellProfiler's Image_MD5Digest of every site equals the raw md5 in site_images "
                "(verified, contradicted or unknown per site; fails on any contradiction)."
            ),
        )
    ],
    description=(
        "Single cells of the plate (Cytoplasm joined with Cells and Nuclei within an image) in "
        "cell_profiles.lance, each with a deterministic cell_id and the site_key of its image; "
        "streamed from the CellProfiler SQLite. Its check compares CellProfiler's image MD5 "
        "digests with the raw md5 stored in site_images."
    ),
)
def cell_profiles(
    context: AssetExecutionContext,
    config: CellProfilesConfig,
    plate_index: pa.Table,
    source: SourceResource,
    lake: LakeResource,
) -> MaterializeResult:
    plate = plate_row(plate_index, context.partition_key, context.run.tags)
    store = source.store()
    key = layout.backend_sqlite_key(plate["source"], plate["batch"], plate["plate"])
    partition_filter = plate_filter(context.partition_key)
    names = {"source": plate["source"], "batch": plate["batch"], "plate": plate["plate"]}
    started = time.perf_counter()
    if not store.exists(key):
        return MaterializeResult(
            metadata=_no_profiles(
                context, "CellProfiler single-cell backend", store.uri(key), lake, CELL_PROFILES
            ),
            check_results=for_partition(
                [
                    AssetCheckResult(
                        check_name="profile_digests_match_images",
                        passed=True,
                        description="No CellProfiler backend for this plate: nothing to compare.",
                        metadata={"skipped": "no profiles for this plate"},
                    )
                ],
                context.partition_key,
            ),
        )
    with store.local_file(key, suffix=".sqlite") as sqlite_path:
        schema = cell_profiles_schema_from_sqlite(sqlite_path)
        counted = {"rows": 0, "batches": 0}

        def batches() -> Iterator[pa.RecordBatch]:
            for batch in iter_cell_profiles(
                sqlite_path, store.uri(key), images_per_batch=config.images_per_batch, **names
            ):
                counted["rows"] += batch.num_rows
                counted["batches"] += 1
                if counted["batches"] % 50 == 0:
                    context.log.info(f"{context.partition_key}: {counted['rows']:,} cells so far")
                yield batch

        written = write(
            context,
            lake,
            plate_partition(CELL_PROFILES, context.partition_key),
            schema,
            batches(),
            index_columns=("cell_id",),
            evolve=True,
            max_removed_fraction=config.max_removed_fraction,
        )
        digests = image_digests(sqlite_path, source=plate["source"], plate=plate["plate"])
    seconds = time.perf_counter() - started

    verification = verify_digests(digests, _site_md5s(lake, partition_filter))
    counts = digest_summary(verification)
    contradicted = verification.filter(pc.equal(verification["status"], "contradicted"))
    check = AssetCheckResult(
        check_name="profile_digests_match_images",
        passed=counts["contradicted"] == 0,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            **{f"sites_{k}": v for k, v in counts.items()},
            "contradicted_sites": MetadataValue.json(
                contradicted.select(["site_key", "mismatched_channels"]).to_pylist()[:20]
            ),
        },
    )
    context.log.info(
        f"{context.partition_key}: {counted['rows']:,} cells in {seconds:.2f} s; digests {counts}"
    )
    return MaterializeResult(
        metadata={
            **write_metadata(written, schema, seconds, "cells"),
            "profiles_found": True,
            "record_batches": counted["batches"],
            "source_uri": store.uri(key),
            "provenance": MetadataValue.json(counts),
        },
        check_results=for_partition([check], context.partition_key),
    )


class CellCropsConfig(Config):
    """Fixed-size crops around each cell, for training models."""

    size: int = Field(default=96, ge=8, le=1024, description="Crop edge in processed pixels")
    center: str = Field(
        default="Nuclei", description="Compartment whose Location_Center_X/Y centres the crop"
    )


def _crop_batches(
    images: lance.LanceDataset,
    cells: lance.LanceDataset,
    channels: list[str],
    schema: pa.Schema,
    partition_filter: str,
    config: CellCropsConfig,
    counted: dict[str, int],
) -> Iterator[pa.RecordBatch]:
    x_col = f"{config.center}_Location_Center_X"
    y_col = f"{config.center}_Location_Center_Y"
    site_columns = ["site_key", "source", "plate", "well", "site", "recipe_name"]
    for c in channels:
        site_columns += [f"{c}_pixels", f"{c}_shape", f"{c}_dtype", f"{c}_crop_offset"]
    # The plate's cell centres, read once (a few small columns), grouped by site in memory: one
    # scan of cell_profiles per plate instead of one per site.
    centres = cells.to_table(
        columns=["site_key", "cell_id", "object_number", x_col, y_col], filter=partition_filter
    ).sort_by("site_key")
    site_keys = centres["site_key"].to_numpy(zero_copy_only=False)
    for site_batch in images.to_batches(
        columns=site_columns, filter=partition_filter, batch_size=4
    ):
        for site in site_batch.to_pylist():
            start = int(np.searchsorted(site_keys, site["site_key"], side="left"))
            stop = int(np.searchsorted(site_keys, site["site_key"], side="right"))
            if stop == start:
                continue
            cell_rows = centres.slice(start, stop - start)
            offset_y, offset_x = site[f"{channels[0]}_crop_offset"] or (0, 0)
            stack = np.stack([site_array(site, c) for c in channels])
            centers = np.column_stack(
                [
                    cell_rows[x_col].to_numpy(zero_copy_only=False) - offset_x,
                    cell_rows[y_col].to_numpy(zero_copy_only=False) - offset_y,
                ]
            )
            crops, touches = crop_cells(stack, centers, size=config.size)
            counted["cells"] += len(crops)
            columns: dict[str, Any] = {
                "cell_id": cell_rows["cell_id"].to_pylist(),
                "site_key": [site["site_key"]] * len(crops),
                "source": [site["source"]] * len(crops),
                "plate": [site["plate"]] * len(crops),
                "well": [site["well"]] * len(crops),
                "site": [site["site"]] * len(crops),
                "object_number": cell_rows["object_number"].to_pylist(),
                "center_x": centers[:, 0],
                "center_y": centers[:, 1],
                "touches_border": touches,
                "crop_shape": [[config.size, config.size]] * len(crops),
                "dtype": [str(stack.dtype)] * len(crops),
                "site_images_version": [images.version] * len(crops),
                "recipe_name": [site["recipe_name"]] * len(crops),
            }
            for index, c in enumerate(channels):
                columns[f"{c}_crop"] = [crop[index].tobytes() for crop in crops]
            yield pa.RecordBatch.from_pydict(
                {name: columns[name] for name in schema.names}, schema=schema
            )


@asset(
    group_name=GROUP,
    partitions_def=plates_partitions,
    kinds={"lance"},
    owners=OWNERS,
    tags=tags("jump", "lance"),
    code_version=PROFILES_CODE_VERSION,
    deps=[AssetKey(SITE_IMAGES), AssetKey(CELL_PROFILES)],
    description=(
        "Fixed-size crops (every channel) centred on each cell of the processed site images, in "
        "cell_crops.lance with cell_id, site_key and the site_images version they came from; "
        "crops at the image border are zero-padded and flagged."
    ),
)
def cell_crops(
    context: AssetExecutionContext, config: CellCropsConfig, lake: LakeResource
) -> MaterializeResult:
    options = lake.storage_options()
    partition_filter = plate_filter(context.partition_key)
    images = lance_tables.open_dataset(lake.dataset_uri(SITE_IMAGES), options)
    cells = lance_tables.open_dataset(lake.dataset_uri(CELL_PROFILES), options)
    if images is None or cells is None or cells.count_rows(filter=partition_filter) == 0:
        context.log.info(f"{context.partition_key}: no cells (or no images) to crop")
        return MaterializeResult(
            metadata={
                "dagster/row_count": 0,
                "rows": 0,
                "status": MetadataValue.text("no cells for this plate"),
            }
        )
    channels = [
        name.removesuffix("_pixels") for name in images.schema.names if name.endswith("_pixels")
    ]
    schema = cell_crops_schema(channels, config.size)
    counted = {"cells": 0}
    started = time.perf_counter()
    written = write(
        context,
        lake,
        plate_partition(CELL_CROPS, context.partition_key),
        schema,
        _crop_batches(images, cells, channels, schema, partition_filter, config, counted),
        index_columns=("cell_id",),
        max_removed_fraction=None,  # derived from two guarded lake datasets: always recomputable
        # the version read changes with every other plate's commit; the crops do not
        volatile=("dagster_run_id", "written_at", "site_images_version"),
    )
    seconds = time.perf_counter() - started
    context.log.info(f"{context.partition_key}: {counted['cells']:,} crops in {seconds:.2f} s")
    return MaterializeResult(
        metadata={
            **write_metadata(written, schema, seconds, "crops"),
            "site_images_version": images.version,
        }
    )
