"""Asset `site_images` (per plate): sampled sites fetched, decoded, processed and written to Lance.

The work is done by imaging_assets.jump.images (a stream of record batches) and core's
partition-write protocol (one commit per plate, none when nothing changed); this module wires
config, resources, logging, metadata and the checks that run with every materialization.
"""

import base64
import hashlib
import time
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
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field, field_validator

from imaging_assets.defs.common.catalog import OWNERS, for_partition, tags
from imaging_assets.defs.common.lake_writes import RerunGuardConfig, write, write_metadata
from imaging_assets.defs.common.stores import LakeResource, SourceResource
from imaging_assets.defs.jump.partitions import plates_partitions
from imaging_assets.defs.jump.sampling import SIGNATURE, latest_metadata_text
from imaging_assets.jump.channels import CELL_PAINTING_CHANNELS
from imaging_assets.jump.datasets import FAILED_IMAGES, SITE_IMAGES, plate_filter, plate_partition
from imaging_assets.jump.images import (
    TooManyFailures,
    contact_sheet,
    process_sites,
    site_tasks_from_table,
)
from imaging_assets.jump.schemas import failed_images_schema, site_images_schema
from imaging_assets.processing import DEFAULT_MAX_PIXELS, RECIPES, codec_name, get_recipe

GROUP = "images"
MD5_SAMPLE_SITES = 3


def recipes_code_version() -> str:
    """Changes whenever a recipe's version does, so Dagster marks plates stale after a recipe change."""
    versions = ",".join(f"{name}={recipe.version}" for name, recipe in sorted(RECIPES.items()))
    return hashlib.sha1(versions.encode()).hexdigest()[:12]


class SiteImagesConfig(RerunGuardConfig):
    """How a plate's sampled sites become images. Everything here lands in provenance."""

    recipe: str = Field(default="robust_8bit_crop", description="Processing recipe name")
    recipe_params: dict[str, float] = Field(
        default_factory=dict, description="Recipe parameters (defaults per recipe when empty)"
    )
    channels: list[str] = Field(
        default_factory=lambda: list(CELL_PAINTING_CHANNELS), description="Channels to keep"
    )
    workers: int = Field(default=8, ge=1, le=128, description="Concurrent object reads")
    batch_rows: int = Field(default=8, ge=1, description="Sites per Lance record batch")
    max_failed_fraction: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Failed sites / sites tolerated before failing"
    )
    contact_sheet_sites: int = Field(default=4, ge=0, description="Sites in the UI contact sheet")
    codec: str | None = Field(
        default=None,
        description=(
            "How each channel's pixels are stored, lossless: 'pzstd' (predictor + zstd, smaller "
            "than PNG), 'zstd' (zstd of the C-order bytes: faster to read, 1.3x PNG's bytes) or "
            "'raw' (C-order bytes, uncompressed in new lakes); unset: the recipe's default (zstd "
            "for the raw recipe, pzstd otherwise). Stored per row as <c>_codec"
        ),
    )
    expected_shape: list[int] | None = Field(
        default=None,
        description=(
            "Raw image shape [height, width] every image must declare; when unset, the majority "
            "of the first sites' TIFF headers fixes it per plate"
        ),
    )
    expected_dtype: str | None = Field(
        default=None,
        description=(
            "Raw pixel dtype (e.g. uint16) every image must declare; when unset, fixed per plate "
            "like the shape. Float images are refused unless a float dtype is set here"
        ),
    )
    max_pixels: int = Field(
        default=DEFAULT_MAX_PIXELS,
        ge=1,
        description="Largest image (pixels, from the TIFF header) ever decoded",
    )

    @field_validator("expected_shape")
    @classmethod
    def _two_positive_sides(cls, value: list[int] | None) -> list[int] | None:
        if value is not None and (len(value) != 2 or min(value) < 1):
            raise ValueError(f"expected_shape must be [height, width] > 0, got {value}")
        return value

    @field_validator("codec")
    @classmethod
    def _a_known_codec(cls, value: str | None) -> str | None:
        return codec_name(value) if value else None

    @field_validator("expected_dtype")
    @classmethod
    def _a_numpy_dtype(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return str(np.dtype(value))
        except TypeError as error:
            raise ValueError(f"expected_dtype {value!r} is not a numpy dtype") from error


def _failure_summary(failures: pa.Table) -> dict[str, int]:
    kinds = failures.group_by("error_kind").aggregate([("uri", "count")]).to_pylist()
    return {row["error_kind"]: row["uri_count"] for row in kinds}


def _write_failures(context: AssetExecutionContext, lake: LakeResource, failures: pa.Table) -> None:
    """Make this plate's rows of failed_images exactly `failures` (none: earlier ones go). The
    protocol commits nothing when they are what the last run recorded."""
    schema = failed_images_schema()
    write(
        context,
        lake,
        plate_partition(FAILED_IMAGES, context.partition_key),
        schema,
        failures.cast(schema).to_batches(),
        max_removed_fraction=None,  # failures that no longer occur are meant to go
        volatile=("dagster_run_id", "failed_at"),
    )


def _checks(
    dataset: lance.LanceDataset,
    partition_filter: str,
    expected_rows: int,
    channels: list[str],
    source: SourceResource,
) -> list[AssetCheckResult]:
    keys = dataset.to_table(columns=["site_key"], filter=partition_filter)["site_key"]
    rows, distinct = len(keys), pc.count_distinct(keys).as_py() if len(keys) else 0
    checks = [
        AssetCheckResult(
            check_name="one_row_per_processed_site",
            passed=rows == expected_rows,
            metadata={"rows": rows, "expected": expected_rows},
        ),
        AssetCheckResult(
            check_name="unique_site_key",
            passed=rows == distinct,
            metadata={"rows": rows, "distinct_site_keys": distinct},
        ),
    ]
    sample_keys = sorted(keys.to_pylist())[:MD5_SAMPLE_SITES]
    mismatches: list[str] = []
    if sample_keys:
        prefix = channels[0].lower()
        sample = dataset.to_table(
            columns=["site_key", f"{prefix}_raw_uri", f"{prefix}_read_uri", f"{prefix}_raw_md5"],
            filter=pc.field("site_key").isin(sample_keys),
        ).to_pylist()
        store = source.store()
        for row in sample:  # re-read from where the bytes were read, not the canonical URI
            where = row[f"{prefix}_read_uri"] or row[f"{prefix}_raw_uri"]
            fresh = hashlib.md5(store.read(where).data).hexdigest()
            if fresh != row[f"{prefix}_raw_md5"]:
                mismatches.append(where)
    checks.append(
        AssetCheckResult(
            check_name="raw_md5_matches_fresh_read",
            passed=not mismatches,
            severity=AssetCheckSeverity.ERROR,
            metadata={"sites_checked": len(sample_keys), "mismatched_uris": mismatches},
        )
    )
    return checks


@asset(
    group_name=GROUP,
    partitions_def=plates_partitions,
    kinds={"lance"},
    pool="source_reads",
    code_version=recipes_code_version(),
    owners=OWNERS,
    tags=tags("jump", "lance"),
    check_specs=[
        AssetCheckSpec(
            "one_row_per_processed_site",
            asset=SITE_IMAGES,
            description="The plate's rows equal its sampled sites less those that failed.",
        ),
        AssetCheckSpec(
            "unique_site_key",
            asset=SITE_IMAGES,
            description="No site_key appears twice in the plate (no duplicated writes).",
        ),
        AssetCheckSpec(
            "raw_md5_matches_fresh_read",
            asset=SITE_IMAGES,
            description=(
                "A sample of the plate's raw objects, read again from where they were read, "
                "still has the md5 stored in the row."
            ),
        ),
    ],
    description=(
        "One row per sampled site in the Lance dataset site_images.lance: processed channel "
        "pixels (in the lossless codec named by the channel's `_codec` column) with shape, dtype, intensity "
        "bounds and the raw object's canonical URI (as the load data names it), where it was "
        "read, size, md5, sha256 and ETag, the recipe, package version and run id. A plate is replaced in one commit; unusable images go to "
        "failed_images."
    ),
)
def site_images(
    context: AssetExecutionContext,
    config: SiteImagesConfig,
    sampled_sites: pa.Table,
    source: SourceResource,
    lake: LakeResource,
) -> MaterializeResult:
    recipe = get_recipe(config.recipe, config.recipe_params or None)
    channels = list(config.channels)
    schema = site_images_schema(channels)
    uri = lake.dataset_uri(SITE_IMAGES)
    options = lake.storage_options()
    run_id = context.run.run_id
    partition_filter = plate_filter(context.partition_key)
    sampling = latest_metadata_text(
        context.instance, "sampled_sites", context.partition_key, SIGNATURE
    )
    sampled_before = latest_metadata_text(
        context.instance, SITE_IMAGES, context.partition_key, SIGNATURE
    )
    resampled = sampling is not None and sampled_before is not None and sampling != sampled_before

    tasks = site_tasks_from_table(
        sampled_sites.filter(pc.is_in(sampled_sites["channel"], pa.array(channels))), channels
    )
    context.log.info(
        f"{context.partition_key}: {len(tasks)} sites x {len(channels)} channels, recipe "
        f"{recipe.name} v{recipe.version}, {config.workers} workers"
    )
    last_log = [time.perf_counter()]

    def progress(done: int, total: int) -> None:
        now = time.perf_counter()
        if done == total or now - last_log[0] > 10:
            last_log[0] = now
            context.log.info(f"{context.partition_key}: {done}/{total} sites processed")

    result = process_sites(
        tasks,
        source.store().read,
        recipe=recipe,
        channels=channels,
        workers=config.workers,
        run_id=run_id,
        expected_shape=tuple(config.expected_shape) if config.expected_shape else None,
        expected_dtype=config.expected_dtype,
        max_pixels=config.max_pixels,
        batch_rows=config.batch_rows,
        max_failed_fraction=config.max_failed_fraction,
        progress=progress,
        codec=config.codec,
    )
    try:
        written = write(
            context,
            lake,
            plate_partition(SITE_IMAGES, context.partition_key),
            schema,
            result.batches(),
            index_columns=("site_key",),
            max_removed_fraction=1.0 if resampled else config.max_removed_fraction,
            allow_hint=(
                "ops.site_images.config.max_removed_fraction: 1.0 (or change the sampling "
                "config: re-sampled plates may drop sites)"
            ),
        )
    except TooManyFailures as error:
        _write_failures(context, lake, result.failures_table())
        raise Failure(
            description=f"{context.partition_key}: {error}; site_images left unchanged",
            metadata={
                "failures_by_kind": MetadataValue.json(result.failures_by_kind()),
                "sites_failed": result.sites_failed,
                "sites": len(tasks),
                "expected_raw_image": MetadataValue.json(result.expected()),
            },
        ) from error
    failures = result.failures_table()
    _write_failures(context, lake, failures)

    dataset = lance.dataset(uri, storage_options=options)
    seconds = max(result.seconds, 1e-9)
    metadata: dict[str, Any] = {
        **write_metadata(written, schema, seconds, "sites"),
        **({SIGNATURE: sampling} if sampling else {}),
        "sites_failed": result.sites_failed,
        "images": result.images,
        "raw_bytes_read": result.raw_bytes,
        "processed_bytes": result.processed_bytes,
        "images_per_second": round(result.images / seconds, 1),
        "seconds": round(result.seconds, 2),
        "recipe": MetadataValue.json(
            {"name": recipe.name, "version": recipe.version, "params": recipe.params}
        ),
        "failures_by_kind": MetadataValue.json(
            _failure_summary(failures) if failures.num_rows else {}
        ),
        "expected_raw_image": MetadataValue.json(result.expected()),
    }
    if config.contact_sheet_sites and result.sites_ok:
        sample_rows = dataset.to_table(filter=partition_filter, limit=config.contact_sheet_sites)
        png = contact_sheet(sample_rows, channels, n_sites=config.contact_sheet_sites)
        encoded = base64.b64encode(png).decode()
        # first in the metadata: the picture is what a user checks first (Dagster 1.13 shows
        # markdown metadata behind "[Show Markdown]"; there is no inline image type)
        metadata = {
            "contact_sheet": MetadataValue.md(
                f"![contact sheet: each tile labelled with site key, control role and channel]"
                f"(data:image/png;base64,{encoded})"
            ),
            **metadata,
        }
    context.log.info(
        f"{context.partition_key}: {result.sites_ok} sites written ({result.sites_failed} failed) "
        f"at {metadata['images_per_second']} images/s; {uri} v{written.version} ({written.outcome})"
    )
    checks = _checks(dataset, partition_filter, result.sites_ok, channels, source)
    return MaterializeResult(
        metadata=metadata, check_results=for_partition(checks, context.partition_key)
    )
