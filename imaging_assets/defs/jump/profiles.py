"""Assets `well_profiles`, `cell_profiles` and `cell_crops` (per plate), each a Lance dataset.

Profiles carry the same keys as site_images (source, plate, well, site_key, cell_id), so a feature
row joins back to its images, and the images to their raw objects. Parsing, the single-cell join,
digest verification and cropping live in imaging_assets.jump.profiles; these assets fetch, stream, commit
write one commit per plate (none when nothing changed) and report.
"""

import datetime as dt
import hashlib
import time
from collections.abc import Iterator

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
from imaging_assets.core.provenance import (
    PACKAGE_VERSION,
    file_sha256,
    with_source,
    with_source_fields,
)
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
from imaging_assets.jump.plates import plate_row
from imaging_assets.jump.profiles import (
    FEATURE_SETS,
    cell_crops_schema,
    digest_summary,
    ensure_feature_set,
    image_digests,
    iter_cell_profile_batches,
    plan_cell_profiles,
    verify_digests,
    well_profiles_vector,
)
from imaging_assets.jump.profiles.crops import crop_batches

GROUP = "profiles"
PROFILES_CODE_VERSION = "3"  # bump when parsing, joins or cropping change what is written


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


def _source_values(uri: str, read_uri: str, size: int, context: AssetExecutionContext) -> dict:
    """The provenance every row of a plate's profiles carries: the file they came from."""
    return {
        "source_uri": uri,
        "read_uri": read_uri,
        "source_size": size,
        "package_version": PACKAGE_VERSION,
        "dagster_run_id": context.run.run_id,
        "written_at": dt.datetime.now(dt.UTC),
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
        "CellProfiler per-well profiles of the plate in well_profiles.lance, keyed by source, "
        "plate, well (well_key) like site_images: Metadata_* as text, the features as one "
        "float64 vector (`features`, names in feature_sets.lance by `feature_set`), and the "
        "profiles file's URI, size and sha256."
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
    vectors, feature_set = well_profiles_vector(
        fetched.data,
        fetched.uri,
        source=plate["source"],
        batch=plate["batch"],
        plate=plate["plate"],
    )
    ensure_feature_set(lake.dataset_uri(FEATURE_SETS), feature_set, lake.storage_options())
    schema = with_source_fields(vectors.schema)
    provenance = _source_values(store.uri(key), fetched.uri, len(fetched.data), context)
    provenance["source_sha256"] = hashlib.sha256(fetched.data).hexdigest()
    table = pa.Table.from_batches(
        [with_source(b, provenance, schema) for b in vectors.to_batches()], schema=schema
    )
    written = write(
        context,
        lake,
        plate_partition(WELL_PROFILES, context.partition_key),
        schema,
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
            "features": len(feature_set.names),
            "feature_set": feature_set.id,
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
        plan = plan_cell_profiles(sqlite_path, store.uri(key))
        ensure_feature_set(lake.dataset_uri(FEATURE_SETS), plan.feature_set, lake.storage_options())
        schema = with_source_fields(plan.schema)
        provenance = _source_values(
            store.uri(key), store.uri(key), sqlite_path.stat().st_size, context
        )
        provenance["source_sha256"] = file_sha256(sqlite_path)
        counted = {"rows": 0, "batches": 0}

        def batches() -> Iterator[pa.RecordBatch]:
            for batch in iter_cell_profile_batches(
                sqlite_path, store.uri(key), images_per_batch=config.images_per_batch, **names
            ):
                batch = with_source(batch, provenance, schema)
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
            "features": len(plan.feature_set.names),
            "feature_set": plan.feature_set.id,
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
        crop_batches(
            images,
            cells,
            channels,
            schema,
            partition_filter,
            size=config.size,
            center=config.center,
            run_id=context.run.run_id,
            counted=counted,
        ),
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
