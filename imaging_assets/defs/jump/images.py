"""Asset `site_images` (per plate): sampled sites fetched, decoded, measured, processed and written
to Lance, then judged per plate.

The work is done by imaging_assets.jump.images (a stream of record batches, each site's raw
channels measured with CellProfiler's image-quality features on the way), core's partition-write
protocol (one commit per plate, none when nothing changed) and jump.quality (per-plate outlier
flags, written to site_qc.lance through the same protocol); this module wires config, resources,
logging, metadata (contact sheet, plate map) and the plate's checks, which are partitioned: each
result belongs to its plate, so the UI shows every plate's check status on its own.
"""

import base64
import hashlib
import time
import warnings
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
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    PreviewWarning,
    asset,
)
from pydantic import Field, field_validator

from imaging_assets.core.lance_tables import open_dataset
from imaging_assets.core.partition_write import PartitionWrite, read_record
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
from imaging_assets.jump.images import checks as plate_checks
from imaging_assets.jump.images.contact_sheet import choose_sites
from imaging_assets.jump.images.plate_map import plate_map
from imaging_assets.jump.quality import (
    DEFAULT_METRICS,
    DEFAULT_RULES,
    METRIC_SET_NAME,
    MIN_SITES,
    MetricPlan,
    OutlierRule,
    PlateFlags,
    flag_plate,
    plate_sites,
    reason_counts,
    rule_columns,
    site_qc_partition,
    site_qc_schema,
    site_qc_table,
)
from imaging_assets.jump.schemas import (
    channel_prefix,
    failed_images_schema,
    quality_column,
    quality_fields,
    site_images_schema,
)
from imaging_assets.processing import DEFAULT_MAX_PIXELS, RECIPES, codec_name, get_recipe
from imaging_assets.processing.quality import FEATURES, METRIC_SET_VERSION

GROUP = "images"
MD5_SAMPLE_SITES = 3
PLATE_MAPS = "plate_maps"  # lake prefix of the plate map PNGs: plate_maps/<partition>.png


def recipes_code_version() -> str:
    """Changes whenever a recipe's version or the quality metric set's version does, so Dagster
    marks plates stale after either changes."""
    versions = ",".join(f"{name}={recipe.version}" for name, recipe in sorted(RECIPES.items()))
    versions += f";quality={METRIC_SET_VERSION}"
    return hashlib.sha1(versions.encode()).hexdigest()[:12]


class QcRuleConfig(Config):
    """One outlier rule of image QC (jump/quality.py OutlierRule), applied per plate and channel."""

    feature: str = Field(description="CellProfiler feature, e.g. PowerLogLogSlope")
    channels: list[str] = Field(
        default_factory=lambda: ["*"], description="Channels it applies to ('*': every channel)"
    )
    side: str = Field(default="low", description="'low' (flag below) or 'high' (flag above)")
    method: str = Field(
        default="mad",
        description="'mad': plate median -/+ k x 1.4826 MAD; 'iqr': Q1 - k IQR / Q3 + k IQR",
    )
    k: float = Field(default=3.0, gt=0, description="How many MADs (or IQRs) beyond")
    min_delta: float = Field(
        default=0.0,
        ge=0,
        description="And at least this far from the centre, in the feature's units",
    )

    @field_validator("side")
    @classmethod
    def _a_side(cls, value: str) -> str:
        if value not in ("low", "high"):
            raise ValueError(f"side must be 'low' or 'high', got {value!r}")
        return value

    @field_validator("method")
    @classmethod
    def _a_method(cls, value: str) -> str:
        if value not in ("mad", "iqr"):
            raise ValueError(f"method must be 'mad' or 'iqr', got {value!r}")
        return value

    def rule(self) -> OutlierRule:
        return OutlierRule(
            self.feature, tuple(self.channels), self.side, self.method, self.k, self.min_delta
        )


def _default_rules() -> list[QcRuleConfig]:
    return [
        QcRuleConfig(
            feature=r.feature,
            channels=list(r.channels),
            side=r.side,
            method=r.method,
            k=r.k,
            min_delta=r.min_delta,
        )
        for r in DEFAULT_RULES
    ]


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
    rows_per_file: int = Field(
        default=512,
        ge=1,
        description=(
            "Sites per Lance data file: a plate of more sites is written as several files, so the "
            "writer's buffers stay bounded (peak +475 MB at 3,456 sites against +675 MB in one "
            "file; benchmarks/bench_plate_memory.py)"
        ),
    )
    max_failed_fraction: float = Field(
        default=0.0, ge=0.0, le=1.0, description="Failed sites / sites tolerated before failing"
    )
    contact_sheet_sites: int = Field(
        default=6,
        ge=0,
        description="Sites in the UI contact sheet, spread over control roles and wells",
    )
    qc_metrics: dict[str, list[str]] = Field(
        default_factory=lambda: {f: list(c) for f, c in DEFAULT_METRICS.items()},
        description=(
            "CellProfiler MeasureImageQuality features measured on the raw pixels, each with the "
            "channels it is computed on ('*': all). The default fits the +15% CPU budget: "
            "PercentMaximal/Minimal, Min/MaxIntensity on every channel; PowerLogLogSlope, "
            "FocusScore, LocalFocusScore, Mean/Std/TotalIntensity on DNA; Correlation and "
            "Median/MADIntensity off. An empty map measures nothing"
        ),
    )
    qc_rules: list[QcRuleConfig] = Field(
        default_factory=_default_rules,
        description=(
            "Per-plate outlier rules that flag sites (site_qc.qc_pass / qc_reasons); default: "
            "DNA PowerLogLogSlope below median - 3 MAD (blur), PercentMaximal above median + 3 "
            "MAD and + 0.1 % (saturation)"
        ),
    )
    qc_min_sites: int = Field(
        default=MIN_SITES,
        ge=1,
        description="Sites with a value a rule needs on a plate before it flags any",
    )
    qc_max_flagged_fraction: float = Field(
        default=0.05,
        ge=0.0,
        le=1.0,
        description="Share of a plate's sites QC may flag before the plate's check fails (WARN)",
    )
    plate_map_feature: str = Field(
        default="PowerLogLogSlope", description="Feature the plate map shows"
    )
    plate_map_channel: str = Field(default="DNA", description="Channel the plate map shows")
    codec: str | None = Field(
        default=None,
        description=(
            "How each channel's pixels are stored, lossless: 'pzstd' (predictor + zstd, smaller "
            "than PNG), 'zstd' (zstd of the C-order bytes: faster to read, 1.3x PNG's bytes) or "
            "'raw' (C-order bytes, uncompressed in new lakes); unset: the recipe's default (zstd "
            "for the raw recipe, pzstd otherwise). Stored per row as `{channel}_codec`"
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

    @field_validator("qc_metrics")
    @classmethod
    def _known_features(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        MetricPlan.from_config(value)  # raises naming unknown features
        return value

    @field_validator("plate_map_feature")
    @classmethod
    def _a_feature(cls, value: str) -> str:
        if value not in FEATURES:
            raise ValueError(f"unknown feature {value!r}; known: {', '.join(FEATURES)}")
        return value

    def rules(self) -> list[OutlierRule]:
        return [rule.rule() for rule in self.qc_rules]

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


# -- the plate's checks: partitioned, so each result belongs to its plate ------------------------

ONE_ROW = "one_row_per_processed_site"
UNIQUE = "unique_site_key"
MD5 = "raw_md5_matches_fresh_read"
FINITE = "quality_values_finite"
QC_SHARE = "qc_flagged_share_under_limit"


def _spec(name: str, description: str, blocking: bool) -> AssetCheckSpec:
    # partitions_def on a check is "preview" in Dagster 1.13 (it warns once per spec); it is what
    # makes each result belong to its plate (AssetCheckEvaluation.partition, per-partition status)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PreviewWarning)
        return AssetCheckSpec(
            name,
            asset=SITE_IMAGES,
            description=description,
            blocking=blocking,
            partitions_def=plates_partitions,
        )


# Blocking (an ERROR result stops downstream assets of the plate in the same run): rows, keys,
# raw digests and non-finite values are facts cell_crops and the profiles' joins build on.
# The QC share only WARNs: flagged sites are kept out of reads by the read API, and a plate with
# many of them is for a person to look at (its plate map), not a reason to stop its profiles.
CHECK_SPECS = [
    _spec(
        ONE_ROW,
        "The plate's rows are exactly its sampled sites less the sites recorded in "
        "failed_images (names missing and unexpected site keys). Blocking.",
        True,
    ),
    _spec(
        UNIQUE,
        "No site_key appears twice in the plate (no duplicated writes). Blocking.",
        True,
    ),
    _spec(
        MD5,
        f"{MD5_SAMPLE_SITES} sites spread over the plate, one channel each in turn: the raw object "
        "read again from where it was read still has the md5 stored in the row. Blocking.",
        True,
    ),
    _spec(
        FINITE,
        "No NaN or infinity in the plate's image-quality features or intensity bounds "
        "(features not computed are null, which is fine). Blocking.",
        True,
    ),
    _spec(
        QC_SHARE,
        "The share of the plate's sites that image QC flagged (site_qc.qc_pass false: blur, "
        "saturation per the configured rules) is at most qc_max_flagged_fraction. Warns.",
        False,
    ),
]


def _result(name: str, outcome: plate_checks.Outcome, severity=AssetCheckSeverity.ERROR):
    metadata = {
        k: MetadataValue.json(v) if isinstance(v, (list, dict)) else v
        for k, v in outcome.facts.items()
    }
    return AssetCheckResult(
        check_name=name, passed=outcome.passed, severity=severity, metadata=metadata
    )


def _failed_site_keys(lake: LakeResource, partition_filter: str) -> set[str]:
    dataset = open_dataset(lake.dataset_uri(FAILED_IMAGES), lake.storage_options())
    if dataset is None:
        return set()
    return set(
        dataset.to_table(columns=["site_key"], filter=partition_filter)["site_key"].to_pylist()
    )


def _checks(
    dataset: lance.LanceDataset,
    partition_filter: str,
    sampled: list[str],
    failed: set[str],
    channels: list[str],
    source: SourceResource,
    flags: PlateFlags,
    max_flagged_fraction: float,
) -> list[AssetCheckResult]:
    keys = dataset.to_table(columns=["site_key"], filter=partition_filter)["site_key"]
    keys = keys.combine_chunks()
    store = source.store()
    measured = [f.name for f in quality_fields(channels) if f.type == pa.float64()]
    bounds = [f"{channel_prefix(c)}_{edge}" for c in channels for edge in ("low", "high")]
    names = set(dataset.schema.names)
    values = dataset.to_table(
        columns=[c for c in [*measured, *bounds] if c in names], filter=partition_filter
    )
    return [
        _result(ONE_ROW, plate_checks.rows_match_sites(keys, sampled, failed)),
        _result(UNIQUE, plate_checks.unique_keys(keys)),
        _result(
            MD5,
            plate_checks.md5_sample(
                dataset,
                keys.to_pylist(),
                channels,
                lambda uri: store.read(uri).data,
                MD5_SAMPLE_SITES,
            ),
        ),
        _result(FINITE, plate_checks.finite_values(values)),
        _result(
            QC_SHARE,
            plate_checks.flagged_share(flags, max_flagged_fraction),
            AssetCheckSeverity.WARN,
        ),
    ]


# -- image QC after the stream: flags, site_qc, plate map -------------------------------------


def _image_qc(
    context: AssetExecutionContext,
    lake: LakeResource,
    dataset: lance.LanceDataset,
    config: SiteImagesConfig,
    channels: list[str],
) -> tuple[PlateFlags, PartitionWrite, bytes | None, str | None]:
    """The plate's flags (from the metric columns just written), written to site_qc, and the
    plate map PNG (saved in the lake); returns (flags, site_qc write, plate map bytes, key)."""
    key = context.partition_key
    rules = config.rules()
    map_column = quality_column(config.plate_map_feature, config.plate_map_channel)
    sites = plate_sites(dataset, plate_filter(key), [*rule_columns(rules, channels), map_column])
    flags = flag_plate(sites, channels, rules, min_sites=config.qc_min_sites)
    record = read_record(lake.handle(), SITE_IMAGES, key)
    table = site_qc_table(
        sites,
        flags,
        site_images_version=record.version if record else dataset.version,
        run_id=context.run.run_id,
    )
    written = write(
        context,
        lake,
        site_qc_partition(key),
        site_qc_schema(),
        table.to_batches(),
        index_columns=("site_key",),
        max_removed_fraction=None,  # site_qc follows site_images: sites gone there go here
    )
    png, map_key = None, None
    if sites.num_rows and map_column in sites.column_names:
        flagged = [k for k, r in zip(flags.site_keys, flags.reasons, strict=True) if r]
        png = plate_map(
            sites.to_pydict(),
            map_column,
            title=f"{key}: {flags.flagged} of {flags.sites} sites flagged by image QC",
            flagged=flagged,
        )
        map_key = f"{PLATE_MAPS}/{key}.png"
        lake.handle().store.write_bytes(map_key, png)
    return flags, written, png, map_key


def _image(alt: str, png: bytes) -> MetadataValue:
    # Dagster 1.13 shows markdown metadata behind "[Show Markdown]"; there is no inline image type
    encoded = base64.b64encode(png).decode()
    return MetadataValue.md(f"![{alt}](data:image/png;base64,{encoded})")


@asset(
    group_name=GROUP,
    partitions_def=plates_partitions,
    kinds={"lance"},
    pool="source_reads",
    code_version=recipes_code_version(),
    owners=OWNERS,
    tags=tags("jump", "lance"),
    check_specs=CHECK_SPECS,
    description=(
        "One row per sampled site in the Lance dataset site_images.lance: processed channel "
        "pixels (in the lossless codec named by the channel's `_codec` column) with shape, "
        "dtype, intensity bounds and the raw object's canonical URI (as the load data names "
        "it), where it was read, size, md5, sha256 and ETag; CellProfiler's MeasureImageQuality "
        "features of each raw channel under CellProfiler's names (`ImageQuality_FocusScore_OrigDNA`, "
        "...; metric set in qc_metric_set); the recipe, package version and run id. A "
        "plate is replaced in one commit; unusable images go to failed_images; each site's "
        "per-plate QC verdict (qc_pass, qc_reasons) goes to site_qc.lance, the plate map to "
        "`plate_maps/{source}__{plate}.png` in the lake."
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
    quality = MetricPlan.from_config(config.qc_metrics)

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
        quality=quality,
    )
    try:
        written = write(
            context,
            lake,
            plate_partition(SITE_IMAGES, context.partition_key),
            schema,
            result.batches(),
            index_columns=("site_key",),
            max_rows_per_file=config.rows_per_file,
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
    flags, qc_written, plate_png, plate_map_key = _image_qc(
        context, lake, dataset, config, channels
    )
    flagged = [k for k, r in zip(flags.site_keys, flags.reasons, strict=True) if r]
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
        "qc_metric_set": METRIC_SET_NAME,
        "qc_metrics": MetadataValue.json(quality.describe(channels)),
        "qc_flagged_sites": flags.flagged,
        "qc_flagged_share": round(flags.flagged / flags.sites, 4) if flags.sites else 0.0,
        "qc_reasons": MetadataValue.json(reason_counts(flags.reasons)),
        "qc_cpu_seconds": round(result.quality_seconds, 3),
        "site_qc_uri": MetadataValue.path(qc_written.uri),
        "site_qc_version": qc_written.version,
        "site_qc_outcome": qc_written.outcome,
    }
    pictures: dict[str, Any] = {}
    if config.contact_sheet_sites and result.sites_ok:
        chosen = _contact_sheet_rows(dataset, partition_filter, config.contact_sheet_sites, flagged)
        png = contact_sheet(chosen, channels, n_sites=config.contact_sheet_sites, flagged=flagged)
        pictures["contact_sheet"] = _image(
            "contact sheet: sites across control roles and wells, one row per channel",
            png,
        )
    if plate_png is not None:
        pictures["plate_map"] = _image(
            f"plate map of {config.plate_map_feature} {config.plate_map_channel}",
            plate_png,
        )
        metadata["plate_map_uri"] = MetadataValue.path(lake.handle().store.uri(plate_map_key))
        metadata["plate_map_ref"] = lake.handle().relative(plate_map_key)
    # first in the metadata: the pictures are what a user checks first
    metadata = {**pictures, **metadata}
    context.log.info(
        f"{context.partition_key}: {result.sites_ok} sites written ({result.sites_failed} failed) "
        f"at {metadata['images_per_second']} images/s; {uri} v{written.version} ({written.outcome});"
        f" image QC flagged {flags.flagged} of {flags.sites} sites"
    )
    checks = _checks(
        dataset,
        partition_filter,
        [t.site_key for t in tasks],
        _failed_site_keys(lake, partition_filter),
        channels,
        source,
        flags,
        config.qc_max_flagged_fraction,
    )
    # the results carry their plate (partitioned checks); the metadata names it too, for readers
    # of the event log that predate partitioned checks
    return MaterializeResult(
        metadata=metadata, check_results=for_partition(checks, context.partition_key)
    )


def _contact_sheet_rows(
    dataset: lance.LanceDataset, partition_filter: str, n_sites: int, flagged: list[str]
) -> pa.Table:
    """The rows (with pixels) of the sites the contact sheet shows: chosen across control roles
    and wells from the plate's keys, then read by key."""
    keys = dataset.to_table(
        columns=["site_key", "well", "control_role"], filter=partition_filter
    ).to_pydict()
    chosen = choose_sites(keys["site_key"], keys["well"], keys["control_role"], n_sites, flagged)
    return dataset.to_table(filter=pc.field("site_key").isin(chosen))
