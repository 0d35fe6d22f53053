"""Image quality of a plate's sites: which CellProfiler features are measured, and the per-plate
outlier flags that QC tools derive from them.

Measuring (while the site is processed, on the raw pixels, no second read): CellProfiler's
MeasureImageQuality features, computed by imaging_assets.processing.quality with CellProfiler's
names and definitions. A `MetricPlan` says which feature is computed on which channel; every
feature it does compute is exactly what `processing.quality.measure` gives (tested), the others
are stored as null. The default plan fits the pipeline's budget (at most +15 % CPU per image,
benchmarks/bench_images.py, with and without in the same run): saturation and the intensity range
on every channel; blur (PowerLogLogSlope, FocusScore, LocalFocusScore) and the intensity level on
DNA, the channel the instrument focuses on. Measured inside the stream, CellProfiler's full set
costs ~11 ms per 1080x1080 image (the FFT of PowerLogLogSlope ~5, the tile sums of the focus
scores ~2, Correlation ~2, the median and MAD ~1.2) against ~15-20 ms for the rest of the
pipeline, so the expensive features are computed where the QC rules read them. The default costs
~2.2-2.7 ms an image inside the stream: +11 to +15 % on synthetic 1080 px sites, +6 to +12 % on
the real Phenix fixtures (bench_images.py, both arms in one run, a shared 2-core machine).

Flagging (after the stream, from the plate's stored metric columns): robust outliers per plate
and channel, one `OutlierRule` per feature: below (or above) the plate's median - k MAD (MAD
scaled by 1.4826, the normal-consistent MAD) or Q1 - k IQR (Q3 + k IQR). A site is flagged when
any rule flags it; each flag is a readable reason, e.g. "DNA PowerLogLogSlope below plate median
- 3 MAD (-2.91 < -2.45)". The verdicts go to the small Lance table site_qc (one row per site,
keyed by site_key, replaced per plate like the images), so the read API can filter on them and
profiles can join them on site_key.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from imaging_assets import __version__
from imaging_assets.core.partition_write import Partition
from imaging_assets.jump.datasets import SITE_QC, plate_partition
from imaging_assets.jump.schemas import quality_column
from imaging_assets.processing import quality as cp
from imaging_assets.processing.quality import (
    FEATURES,
    METRIC_SET,
    METRIC_SET_VERSION,
    measurable,
    measure_features,
)

METRIC_SET_NAME = f"{METRIC_SET}/{METRIC_SET_VERSION}"  # "cellprofiler.MeasureImageQuality/1"
ALL_CHANNELS = "*"
MAD_TO_SD = 1.4826  # the MAD of a normal distribution times this is its standard deviation
MIN_SITES = 10  # sites with a value a rule needs on a plate before it flags any

DNA = "DNA"
DEFAULT_METRICS: dict[str, tuple[str, ...]] = {
    # every channel: saturation and the intensity range (~0.55 ms an image)
    **{f: (ALL_CHANNELS,) for f in ("TotalArea", *sorted(cp.EXTREMA))},
    # DNA, the channel the instrument focuses on: blur (the power spectrum's slope and the focus
    # scores) and the intensity level (~7.5 ms for the DNA image, ~1.5 ms a site's image)
    **{f: (DNA,) for f in ("PowerLogLogSlope", *sorted(cp.TILE_STATISTICS), *sorted(cp.SUMS))},
    # off unless configured: Correlation, MedianIntensity, MADIntensity (any feature can be
    # configured for any channel: SiteImagesConfig.qc_metrics)
}


# -- measuring --------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _planned(metrics: tuple[tuple[str, tuple[str, ...]], ...], channel: str) -> frozenset[str]:
    return frozenset(
        f for f, channels in metrics if ALL_CHANNELS in channels or channel in channels
    )


@dataclass(frozen=True)
class MetricPlan:
    """Which feature is computed on which channel: feature -> channels ("*": every channel)."""

    metrics: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_METRICS))

    def __post_init__(self) -> None:
        unknown = sorted(set(self.metrics) - set(FEATURES))
        if unknown:
            raise ValueError(f"unknown quality features {unknown}; known: {', '.join(FEATURES)}")

    @classmethod
    def from_config(cls, metrics: Mapping[str, Iterable[str]]) -> MetricPlan:
        return cls({feature: tuple(channels) for feature, channels in metrics.items()})

    def features(self, channel: str) -> frozenset[str]:
        return _planned(tuple((f, tuple(c)) for f, c in sorted(self.metrics.items())), channel)

    def measure(self, channel: str, image: np.ndarray) -> tuple[dict[str, float], float | None]:
        """({column: value} of the channel's planned features, the intensity scale), or ({},
        None) when nothing is planned for it or the image is not uint8/uint16."""
        features = self.features(channel)
        if not features or not measurable(image):
            return {}, None
        values = measure_features(image, features)
        scale = float(np.iinfo(image.dtype).max)
        return {quality_column(f, channel): v for f, v in values.items()}, scale

    def describe(self, channels: Iterable[str]) -> dict[str, list[str]]:
        """What this plan computes on these channels, for metadata: feature -> channels."""
        channels = list(channels)
        return {
            feature: [c for c in channels if feature in self.features(c)]
            for feature in FEATURES
            if any(feature in self.features(c) for c in channels)
        }


# -- flagging ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutlierRule:
    """Flag a site whose feature, in one of the channels, lies beyond the plate's robust spread.

    side "low": below centre - max(k * spread, min_delta); "high": above centre + the same.
    method "mad": centre the plate median, spread 1.4826 * MAD; "iqr": centre Q1 (low) or Q3
    (high), spread the IQR. A spread of 0 with min_delta 0 flags nothing (nothing to tell an
    outlier by). Sites without a value (not computed) are neither counted nor flagged.
    """

    feature: str
    channels: tuple[str, ...] = (ALL_CHANNELS,)
    side: str = "low"
    method: str = "mad"
    k: float = 3.0
    min_delta: float = 0.0

    def __post_init__(self) -> None:
        if self.feature not in FEATURES:
            raise ValueError(f"unknown quality feature {self.feature!r}; known: {FEATURES}")
        if self.side not in ("low", "high"):
            raise ValueError(f"side must be 'low' or 'high', got {self.side!r}")
        if self.method not in ("mad", "iqr"):
            raise ValueError(f"method must be 'mad' or 'iqr', got {self.method!r}")
        if not (self.k > 0 and self.min_delta >= 0):
            raise ValueError(f"k must be > 0 and min_delta >= 0, got {self.k}, {self.min_delta}")

    def channels_of(self, channels: Iterable[str]) -> list[str]:
        return [c for c in channels if ALL_CHANNELS in self.channels or c in self.channels]

    def label(self) -> str:
        """E.g. "below plate median - 3 MAD"."""
        direction, sign = ("below", "-") if self.side == "low" else ("above", "+")
        if self.method == "mad":
            return f"{direction} plate median {sign} {self.k:g} MAD"
        return f"{direction} plate {'Q1' if self.side == 'low' else 'Q3'} {sign} {self.k:g} IQR"


DEFAULT_RULES: tuple[OutlierRule, ...] = (
    # blur: the DNA power spectrum falls off faster (a more negative slope) when out of focus;
    # min_delta is a floor for plates whose slopes barely spread
    OutlierRule("PowerLogLogSlope", ("DNA",), "low", "mad", 3.0, min_delta=0.05),
    # saturation: many pixels at the image's own maximum; in focus and unsaturated that is a
    # handful of pixels (~1e-4 %), so the share must also exceed the plate median by 0.1 %
    OutlierRule("PercentMaximal", (ALL_CHANNELS,), "high", "mad", 3.0, min_delta=0.1),
)


def rule_columns(rules: Iterable[OutlierRule], channels: Iterable[str]) -> list[str]:
    """The site_images columns the rules read."""
    columns: list[str] = []
    for rule in rules:
        for channel in rule.channels_of(channels):
            name = quality_column(rule.feature, channel)
            if name not in columns:
                columns.append(name)
    return columns


@dataclass(frozen=True)
class PlateFlags:
    """Each site's verdict (in the order of the sites given) and the plate's thresholds."""

    site_keys: list[str]
    reasons: list[list[str]]
    thresholds: dict[str, dict]  # column -> centre, spread, threshold, sites, flagged
    sites: int

    @property
    def passed(self) -> list[bool]:
        return [not r for r in self.reasons]

    @property
    def flagged(self) -> int:
        return sum(1 for r in self.reasons if r)


def _threshold(values: np.ndarray, rule: OutlierRule) -> dict:
    median = float(np.median(values))
    if rule.method == "mad":
        spread = MAD_TO_SD * float(np.median(np.abs(values - median)))
        centre = median
    else:
        q1, q3 = (float(q) for q in np.percentile(values, [25, 75]))
        spread, centre = q3 - q1, (q1 if rule.side == "low" else q3)
    reach = max(rule.k * spread, rule.min_delta)
    threshold = centre - reach if rule.side == "low" else centre + reach
    return {"median": median, "centre": centre, "spread": spread, "threshold": threshold}


def flag_plate(
    sites: pa.Table,
    channels: Iterable[str],
    rules: Iterable[OutlierRule] = DEFAULT_RULES,
    *,
    min_sites: int = MIN_SITES,
) -> PlateFlags:
    """Each site's reasons to be flagged, from one plate's rows (site_key and the rule columns).

    A rule is applied per channel over the plate's sites that have a value; with fewer than
    `min_sites` such sites it flags nothing: a median and MAD of a handful of sites are too
    uncertain to call outliers by (measured on the synthetic gallery: at 6 sites a plate, 3 MAD
    flags a clean site on about one plate in five)."""
    keys = sites.column("site_key").to_pylist()
    reasons: list[list[str]] = [[] for _ in keys]
    thresholds: dict[str, dict] = {}
    for rule in rules:
        for channel in rule.channels_of(channels):
            name = quality_column(rule.feature, channel)
            if name not in sites.column_names:
                continue
            column = sites.column(name).to_numpy(zero_copy_only=False)
            values = np.asarray(column, dtype=np.float64)  # null -> NaN
            finite = np.isfinite(values)
            entry: dict = {"rule": rule.label(), "sites": int(finite.sum()), "flagged": 0}
            thresholds[name] = entry
            if finite.sum() < min_sites:
                entry["skipped"] = f"fewer than {min_sites} sites with a value"
                continue
            entry |= _threshold(values[finite], rule)
            if entry["threshold"] == entry["centre"]:
                entry["skipped"] = "no spread and no min_delta"
                continue
            limit = entry["threshold"]
            with np.errstate(invalid="ignore"):
                out = values < limit if rule.side == "low" else values > limit
            out &= finite
            relation = "<" if rule.side == "low" else ">"
            for index in np.flatnonzero(out):
                reasons[index].append(
                    f"{channel} {rule.feature} {rule.label()} "
                    f"({values[index]:.4g} {relation} {limit:.4g})"
                )
            entry["flagged"] = int(out.sum())
    return PlateFlags(keys, reasons, thresholds, len(keys))


# -- the site_qc table ------------------------------------------------------------------------


def site_qc_schema() -> pa.Schema:
    """One row per site of site_images: its QC verdict, the rules and the plate's thresholds.

    Derived from site_images (site_images_version: the version that committed the plate's rows
    the verdicts were computed from); replaced per plate in one commit like the images."""
    s = pa.string()
    return pa.schema(
        [pa.field(name, s) for name in ("site_key", "source", "batch", "plate", "well", "site")]
        + [
            pa.field("control_role", s),
            pa.field("qc_pass", pa.bool_()),
            pa.field("qc_reasons", pa.list_(s)),
            pa.field("qc_metric_set", s),
            pa.field("qc_rules", s),  # JSON: each rule column's rule, centre, spread, threshold
            pa.field("qc_plate_sites", pa.int32()),
            pa.field("site_images_version", pa.int64()),
            pa.field("package_version", s),
            pa.field("dagster_run_id", s),
            pa.field("written_at", pa.timestamp("us", tz="UTC")),
        ]
    )


SITE_COLUMNS = ("site_key", "source", "batch", "plate", "well", "site", "control_role")


def site_qc_table(
    sites: pa.Table, flags: PlateFlags, *, site_images_version: int, run_id: str
) -> pa.Table:
    """The site_qc rows of one plate: `sites` holds SITE_COLUMNS in the order flags were made."""
    n = sites.num_rows
    rules = json.dumps(flags.thresholds, sort_keys=True, default=float)
    now = dt.datetime.now(dt.UTC)
    columns = {name: sites.column(name) for name in SITE_COLUMNS}
    columns |= {
        "qc_pass": pa.array(flags.passed, pa.bool_()),
        "qc_reasons": pa.array(flags.reasons, pa.list_(pa.string())),
        "qc_metric_set": pa.array([METRIC_SET_NAME] * n, pa.string()),
        "qc_rules": pa.array([rules] * n, pa.string()),
        "qc_plate_sites": pa.array([flags.sites] * n, pa.int32()),
        "site_images_version": pa.array([site_images_version] * n, pa.int64()),
        "package_version": pa.array([__version__] * n, pa.string()),
        "dagster_run_id": pa.array([run_id] * n, pa.string()),
        "written_at": pa.array([now] * n, pa.timestamp("us", tz="UTC")),
    }
    schema = site_qc_schema()
    return pa.table([columns[f.name] for f in schema], schema=schema)


def site_qc_partition(partition_key: str) -> Partition:
    """One plate of site_qc.lance, as the partition-write protocol takes it."""
    return plate_partition(SITE_QC, partition_key)


def reason_counts(reasons: Iterable[Iterable[str]]) -> dict[str, int]:
    """How many sites each kind of reason flagged ("DNA PowerLogLogSlope below ..."), values cut."""
    counts: dict[str, int] = {}
    for site in reasons:
        for reason in site:
            kind = reason.split(" (", 1)[0]
            counts[kind] = counts.get(kind, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


__all__ = [
    "DEFAULT_METRICS",
    "DEFAULT_RULES",
    "METRIC_SET_NAME",
    "SITE_QC",
    "MetricPlan",
    "OutlierRule",
    "PlateFlags",
    "flag_plate",
    "measure_features",
    "plate_sites",
    "reason_counts",
    "rule_columns",
    "site_qc_partition",
    "site_qc_schema",
    "site_qc_table",
]


def plate_sites(
    dataset, partition_filter: str, columns: Iterable[str], order_by: str = "site_key"
) -> pa.Table:
    """One plate's rows of site_images (the given columns that exist; never pixels), in site_key
    order, so that flags and the site_qc rows do not depend on the order of the data files."""
    names = set(dataset.schema.names)
    wanted = list(dict.fromkeys(c for c in [*SITE_COLUMNS, *columns] if c in names))
    table = dataset.to_table(columns=wanted, filter=partition_filter)
    return table.sort_by(order_by) if table.num_rows else table
