"""CellProfiler's MeasureImageQuality metrics for one 2-D raw image, cheap enough for every channel.

Names and definitions are CellProfiler's, so QC tools that read CellProfiler output (coSMicQC,
the JUMP QC notebooks) can read these too. The reference is CellProfiler 4.2.8,
cellprofiler/modules/measureimagequality.py (calculate_focus_scores, calculate_correlation,
calculate_power_spectrum, calculate_saturation, run_intensity_measurement), whose code is the same
in cellprofiler-library 5.0.0.dev784 (cellprofiler_library/functions/measurement.py), with
centrosome's radial_power_spectrum.rps and haralick.Haralick.H3.

Scale: CellProfiler measures the image as NamesAndTypes loads it: float32(raw) / 65535 for uint16
(/ 255 for uint8; bioformats' reader and cellprofiler_core's Image both do this). Here every
feature is computed exactly on raw / divisor (divisor = the dtype's maximum unless `scale` is
given), from integer sums and order statistics of the raw pixels; CellProfiler's float32
arithmetic differs from that by float32 rounding only (see imaging_assets_tests/processing/
test_quality.py for the measured agreement).

Where CellProfiler cannot compute a feature it reports 0, not NaN (no pixel pairs for
Correlation, a constant image for PowerLogLogSlope, a zero median for LocalFocusScore), and so
does measure(): for the non-empty unsigned integer images it accepts no feature is NaN.

Why not CellProfiler's own code: CellProfiler 4.2.8 does not install (its pins need sdist
builds of mysqlclient, python-javabridge, h5py 3.6, scipy 1.9), cellprofiler-library-nightly pins
numpy<2 and scipy<1.11, cp-measure has no image-quality functions, and centrosome 1.3.4's rps calls
ndarray.ptp, which numpy 2 removed. Its code is also ~25x slower than this (float64 copies, label
sums, a full complex FFT). Cost here: about 4 ms CPU per 1080x1080 uint16 image on one core, of
which the FFT for PowerLogLogSlope is ~1.8 ms (benchmarks/bench_quality.py).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import scipy.fft

METRIC_SET = "cellprofiler.MeasureImageQuality"
METRIC_SET_VERSION = "1"

FEATURES: tuple[str, ...] = (
    "FocusScore",
    "LocalFocusScore",
    "Correlation",
    "PowerLogLogSlope",
    "PercentMaximal",
    "PercentMinimal",
    "TotalArea",
    "TotalIntensity",
    "MeanIntensity",
    "MedianIntensity",
    "StdIntensity",
    "MADIntensity",
    "MinIntensity",
    "MaxIntensity",
)
# CellProfiler appends the spatial scale to these two names only.
_SCALED_FEATURES = frozenset({"LocalFocusScore", "Correlation"})
# Haralick's co-occurrence in centrosome quantizes the image into this many grey levels.
_GREY_LEVELS = 8


@dataclass(frozen=True)
class QualityConfig:
    """local_focus_scale: CellProfiler's "spatial scale for blur measurements" in pixels (default
    20 in CellProfiler 4): the tile size of LocalFocusScore and the pixel offset of Correlation."""

    local_focus_scale: int = 20

    def __post_init__(self) -> None:
        scale = self.local_focus_scale
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
            raise ValueError(f"local_focus_scale must be a positive int, got {scale!r}")


def feature_name(feature: str, image: str, config: QualityConfig = QualityConfig()) -> str:
    """CellProfiler's measurement name: ImageQuality_<Feature>_<image>[_<scale>]."""
    if feature not in FEATURES:
        raise ValueError(f"unknown feature {feature!r}; expected one of {FEATURES}")
    name = f"ImageQuality_{feature}_{image}"
    if feature in _SCALED_FEATURES:
        name += f"_{config.local_focus_scale:d}"
    return name


@dataclass(frozen=True)
class ImageQualityColumns:
    """The quality columns of one kind of image in a table, named as CellProfiler names them
    for an image called `image` ("Slice", "Frame": ImageQuality_FocusScore_Slice, ...), plus
    `qc_metric_set` and `qc_scale` (which definitions, which divisor). One shape for every
    collection, so a tool that reads one domain's QC reads the others'."""

    image: str
    config: QualityConfig = QualityConfig()

    def column(self, feature: str) -> str:
        return feature_name(feature, self.image, self.config)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.column(feature) for feature in FEATURES)

    def fields(self) -> list[pa.Field]:
        return [pa.field(name, pa.float64()) for name in self.names] + [
            pa.field("qc_metric_set", pa.string()),
            pa.field("qc_scale", pa.float64()),
        ]

    def measure(self, image: np.ndarray) -> dict[str, float | str | None]:
        """Every column for one raw 2-D image; all null when it is not uint8/uint16."""
        if not measurable(image):
            return dict.fromkeys([*self.names, "qc_metric_set", "qc_scale"])
        values = measure(image, self.config)
        return {
            **{self.column(feature): value for feature, value in values.items()},
            "qc_metric_set": f"{METRIC_SET}/{METRIC_SET_VERSION}",
            "qc_scale": float(np.iinfo(image.dtype).max),
        }


# Features grouped by the work they share. CPU ms per 1080x1080 uint16 image measured inside the
# plate pipeline's stream (benchmarks/bench_images.py; isolated loops over the same images measure
# about half of this, their pixels being in cache):
EXTREMA = frozenset({"PercentMaximal", "PercentMinimal", "MinIntensity", "MaxIntensity"})  # 0.55
SUMS = frozenset({"TotalIntensity", "MeanIntensity"})  # 0.3: one exact integer sum
ORDER_STATISTICS = frozenset({"MedianIntensity", "MADIntensity"})  # 1.2: two partitions
TILE_STATISTICS = frozenset(
    {"FocusScore", "LocalFocusScore", "StdIntensity"}
)  # 2.1: squares, tile sums


# PowerLogLogSlope: ~5 (an FFT; its mean comes from the sums); Correlation: ~2 (grey levels)
def measure(
    image: np.ndarray, config: QualityConfig = QualityConfig(), *, scale: float | None = None
) -> dict[str, float]:
    """Every feature of FEATURES, in that order, for one 2-D uint8/uint16 raw image.

    Values are on CellProfiler's scale: raw / scale, scale defaulting to the dtype's maximum
    (65535 for uint16) as CellProfiler loads integer images; pass the divisor CellProfiler would
    use otherwise (e.g. a file's MaxSampleValue).
    """
    return measure_features(image, FEATURES, config, scale=scale)


def measure_features(
    image: np.ndarray,
    features: Iterable[str],
    config: QualityConfig = QualityConfig(),
    *,
    scale: float | None = None,
) -> dict[str, float]:
    """The named features of one raw 2-D uint8/uint16 image; the stages no named feature needs
    are skipped, so a plate or a stack pays only for the features its QC reads."""
    wanted = frozenset(features)
    unknown = wanted - set(FEATURES)
    if unknown:
        raise ValueError(f"unknown features {sorted(unknown)}; expected some of {FEATURES}")
    pixels = _validated(image)
    divisor = _divisor(pixels.dtype, scale)
    n = pixels.size
    vmin, vmax = int(pixels.min()), int(pixels.max())
    values: dict[str, float] = {
        "TotalArea": float(n),
        "MinIntensity": vmin / divisor,
        "MaxIntensity": vmax / divisor,
    }
    if "PercentMaximal" in wanted:
        values["PercentMaximal"] = 100.0 * np.count_nonzero(pixels == vmax) / n
    if "PercentMinimal" in wanted:
        values["PercentMinimal"] = 100.0 * np.count_nonzero(pixels == vmin) / n
    if wanted & ORDER_STATISTICS:
        median, mad = _median_and_mad(pixels)
        values |= {"MedianIntensity": median / divisor, "MADIntensity": mad / divisor}
    total: int | None = None  # the exact integer sum of the pixels, however it was found
    if wanted & TILE_STATISTICS:
        counts, sums, squares = _tile_sums(pixels, config.local_focus_scale, vmax)
        total, total_squares = int(sums.sum()), int(squares.sum())
        variance_n2 = n * total_squares - total * total
        values |= {
            "FocusScore": (variance_n2 / (n * total) if total > 0 else 0.0) / divisor,
            "LocalFocusScore": _local_focus_score(counts, sums, squares) / divisor,
            "StdIntensity": math.sqrt(variance_n2) / n / divisor,
        }
    if wanted & SUMS or ("PowerLogLogSlope" in wanted and vmin != vmax):
        if total is None:
            total = int(pixels.sum(dtype=np.uint64))
        values |= {"TotalIntensity": total / divisor, "MeanIntensity": total / n / divisor}
    if "PowerLogLogSlope" in wanted:
        values["PowerLogLogSlope"] = (
            _power_log_log_slope(pixels, total / n) if vmin != vmax else 0.0
        )
    if "Correlation" in wanted:
        values["Correlation"] = _correlation(pixels, vmin, vmax, config.local_focus_scale, divisor)
    return {feature: float(values[feature]) for feature in FEATURES if feature in wanted}


def measurable(image: np.ndarray) -> bool:
    """CellProfiler's integer scaling applies to uint8/uint16 images only; others get no metrics."""
    dtype = image.dtype
    return image.ndim == 2 and image.size > 0 and dtype.kind == "u" and dtype.itemsize <= 2


def _validated(image: np.ndarray) -> np.ndarray:
    """The image as a C-contiguous native-endian uint8/uint16 array."""
    pixels = np.asarray(image)
    if pixels.ndim != 2 or pixels.size == 0:
        raise ValueError(f"expected a non-empty 2-D image, got shape {pixels.shape}")
    if pixels.dtype.kind != "u" or pixels.dtype.itemsize > 2:
        raise TypeError(f"expected a uint8 or uint16 raw image, got dtype {pixels.dtype.name}")
    return np.ascontiguousarray(pixels, dtype=pixels.dtype.newbyteorder("="))


def _divisor(dtype: np.dtype, scale: float | None) -> float:
    divisor = float(np.iinfo(dtype).max) if scale is None else float(scale)
    if not (math.isfinite(divisor) and divisor > 0):
        raise ValueError(f"scale must be a positive finite number, got {scale!r}")
    return divisor


def _median_and_mad(pixels: np.ndarray) -> tuple[float, float]:
    """np.median and CellProfiler's MAD, median(|x - median|), in raw units, exactly.

    One np.partition gives the middle order statistics; the pixels left of the middle are <=
    the median and those right of it >=, so |x - median| is a subtraction in the image's own
    unsigned dtype (no float copy); a half-integer median is handled by subtracting its floor
    on the left and its ceiling on the right, which shifts every deviation by exactly 0.5.
    """
    part = np.partition(pixels.ravel(), pixels.size // 2)
    low, high = _middle(part)
    doubled = int(low) + int(high)
    left, right = part[: part.size // 2], part[part.size // 2 :]
    np.subtract(doubled // 2, left, out=left)
    np.subtract(right, (doubled + 1) // 2, out=right)
    part.partition(part.size // 2)  # now the deviations
    dev_low, dev_high = _middle(part)
    return doubled / 2, (int(dev_low) + int(dev_high)) / 2 + (doubled % 2) / 2


def _middle(part: np.ndarray) -> tuple[int, int]:
    """The two middle order statistics (equal for an odd size) of an array partitioned at n//2."""
    high = part[part.size // 2]
    low = part[: part.size // 2].max() if part.size % 2 == 0 else high
    return low, high


@functools.lru_cache(maxsize=32)
def _tile_starts(length: int, scale: int) -> np.ndarray:
    """First index of each tile along one axis, CellProfiler's grid.

    CellProfiler makes ceil(length / scale) tiles and puts index i in tile
    int(i * tiles / length), so tiles differ by at most one pixel in size when scale does not
    divide the length; tile j starts at ceil(j * length / tiles).
    """
    tiles = -(-length // scale)
    starts = -(-np.arange(tiles, dtype=np.int64) * length // tiles)
    starts.flags.writeable = False  # shared by the cache
    return starts


def _tile_sums(
    pixels: np.ndarray, scale: int, vmax: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel count, sum and sum of squares of each tile, as exact unsigned integers."""
    rows = _tile_starts(pixels.shape[0], scale)
    cols = _tile_starts(pixels.shape[1], scale)
    heights = np.diff(rows, append=pixels.shape[0])
    widths = np.diff(cols, append=pixels.shape[1])
    band_dtype = np.uint32 if int(heights.max()) * vmax < 2**32 else np.uint64
    sums = _block_sums(pixels, rows, cols, band_dtype)
    squares = _block_sums(np.square(pixels, dtype=np.uint32), rows, cols, np.uint64)
    return np.outer(heights, widths), sums, squares


def _block_sums(values: np.ndarray, rows: np.ndarray, cols: np.ndarray, dtype) -> np.ndarray:
    """Sums over the tiles: whole row bands first (contiguous, fast), then column runs."""
    height = values.shape[0]
    if height % rows.size == 0:  # equal bands: one reduction over a reshaped view
        bands = values.reshape(rows.size, height // rows.size, -1).sum(axis=1, dtype=dtype)
    else:
        ends = [*rows[1:], height]
        bands = np.stack(
            [values[a:b].sum(axis=0, dtype=dtype) for a, b in zip(rows, ends, strict=True)]
        )
    return np.add.reduceat(bands, cols, axis=1, dtype=np.uint64)


def _local_focus_score(counts: np.ndarray, sums: np.ndarray, squares: np.ndarray) -> float:
    """CellProfiler's LocalFocusScore in raw units: var / median of the tiles' normalized variance.

    Each tile with a non-zero mean has normalized variance sum((x - mean)^2) / (n * mean); the
    score is np.var of those over np.median of them (not their mean, whatever the module's help
    text says), and 0 when the median is not positive.
    """
    keep = sums > 0
    n = counts[keep].astype(np.float64)
    s1 = sums[keep].astype(np.float64)
    s2 = squares[keep].astype(np.float64)
    if n.size == 0:
        return 0.0
    normalized_variance = (n * s2 - s1 * s1) / (n * s1)
    median = float(np.median(normalized_variance))
    if not (math.isfinite(median) and median > 0):
        return 0.0
    return float(np.var(normalized_variance)) / median


def _power_log_log_slope(pixels: np.ndarray, mean: float) -> float:
    """Slope of log(radial power) against log(radius), as centrosome's rps + CellProfiler's fit.

    rps takes |FFT|^2 of the mean-subtracted image, sums it (a sum, not a mean) over rings of
    integer radius 2 .. min(shape)/8 - 1 (the DC ring and everything beyond an eighth of the size
    are left out), and CellProfiler fits a least-squares line to log(sum) against log(radius)
    over the rings with power; a constant image gets 0. rps also divides the image by its MAD
    about its float32 mean: that only shifts log(power), not the slope, so it is skipped here
    (were that MAD exactly 0, CellProfiler would get NaNs and report 0; that takes over half of
    the pixels equal to CellProfiler's rounded float32 mean and is not reproduced). Only the low
    frequencies are needed, so the FFT runs over one axis fully and over the other only for
    those rows.
    """
    height, width = pixels.shape
    rings = int(min(height, width) / 8.0)
    if rings <= 2:
        return 0.0
    centred = np.subtract(pixels, np.float32(mean), dtype=np.float32)
    half = scipy.fft.rfft(centred, axis=0, workers=1)[:rings]
    spectrum = scipy.fft.fft(half, axis=1, workers=1, overwrite_x=True)
    index, labels = _ring_index(height, width)
    picked = spectrum.ravel()[index]
    power = np.square(picked.real, dtype=np.float64) + np.square(picked.imag, dtype=np.float64)
    ring_power = np.bincount(labels, weights=power, minlength=rings)[2:rings]
    radius = np.arange(2, rings, dtype=np.float64)
    keep = ring_power > 0
    if np.count_nonzero(keep) < 2:
        return 0.0
    x, y = np.log(radius[keep]), np.log(ring_power[keep])
    x = x - x.mean()
    return float(np.sum(x * (y - y.mean())) / np.sum(x * x))


@functools.lru_cache(maxsize=8)
def _ring_index(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Where each needed full-spectrum coefficient sits in the half spectrum, and its ring.

    The half spectrum holds rows 0 .. rings-1 of the FFT (all columns). Row u >= 0 of the full
    spectrum is half row u; row H - g is, by Hermitian symmetry, half row g at column -v, so
    every half-spectrum entry stands for up to two full-spectrum entries. rps measures the
    distance of entry (u, v) as min(u, H-1-u) and min(v, W-1-v) (its flipud/fliplr are off by
    one from the true frequency on the negative side, kept here), and its ring label is
    floor(sqrt(du^2 + dv^2)) + 1; only labels 2 .. rings-1 are summed.
    """
    rings = int(min(height, width) / 8.0)
    g = np.arange(rings)[:, None]
    v = np.arange(width)[None, :]
    flat = (g * width + v).ravel()
    dv_positive = np.minimum(v, width - 1 - v)
    mirrored = (-v) % width
    dv_negative = np.minimum(mirrored, width - 1 - mirrored)
    index, labels = [], []
    for du, dv, valid_rows in (
        (g, dv_positive, g <= rings - 2),
        (g - 1, dv_negative, g >= 1),
    ):
        label = (np.floor(np.sqrt(du * du + dv * dv)) + 1).astype(np.intp)
        keep = ((label >= 2) & (label <= rings - 1) & valid_rows).ravel()
        index.append(flat[keep])
        labels.append(label.ravel()[keep])
    index, labels = np.concatenate(index), np.concatenate(labels)
    index.flags.writeable = labels.flags.writeable = False  # shared by the cache
    return index, labels


def _correlation(pixels: np.ndarray, vmin: int, vmax: int, offset: int, divisor: float) -> float:
    """Haralick's correlation (centrosome Haralick(image, ones, 0, offset).H3()) of the image.

    centrosome scales the image to 0..1 by its min and max, quantizes it into 8 grey levels and
    counts the co-occurring levels of each pixel and the pixel `offset` columns to its right;
    H3 of that matrix is the Pearson correlation between the two levels over all such pairs.
    CellProfiler reports 0 when it is undefined (no pairs, or a constant side).
    """
    height, width = pixels.shape
    if offset >= width or vmin == vmax:
        return 0.0
    levels = _grey_levels(pixels, vmin, vmax, divisor)
    n = height * (width - offset)
    # float32 sums of levels are exact while below 2**24: column sums (<= 49 * height) and
    # row dot products (<= 49 * width) are, and are added up in float64.
    columns = levels.sum(axis=0)
    columns_sq = np.einsum("ij,ij->j", levels, levels)
    sum_a, sum_b = _exact_sum(columns[:-offset]), _exact_sum(columns[offset:])
    sum_aa, sum_bb = _exact_sum(columns_sq[:-offset]), _exact_sum(columns_sq[offset:])
    sum_ab = _exact_sum(np.einsum("ij,ij->i", levels[:, :-offset], levels[:, offset:]))
    var_a, var_b = n * sum_aa - sum_a * sum_a, n * sum_bb - sum_b * sum_b
    if var_a <= 0 or var_b <= 0:
        return 0.0
    return (n * sum_ab - sum_a * sum_b) / math.sqrt(var_a * var_b)


def _exact_sum(partial_sums: np.ndarray) -> int:
    """The exact sum of exact float32 partial sums, as an int."""
    return int(partial_sums.sum(dtype=np.float64))


def _grey_levels(pixels: np.ndarray, vmin: int, vmax: int, divisor: float) -> np.ndarray:
    """centrosome's 8-level quantization, floor(8 (x - min) / (max - min)) clipped to 7, float32.

    float32(x - min) times the smallest float32 >= 8 / range is exact up to flooring for every
    uint16 value (its error stays far below 1 / range). Only where 8 (x - min) / range is an
    exact integer can CellProfiler's own float32 arithmetic land one level lower; those values
    (and the maximum, level 8 before clipping) are recomputed CellProfiler's way and patched,
    which is cheaper than clipping every pixel.
    """
    span = vmax - vmin
    step = np.float32(_GREY_LEVELS / span)
    if float(step) * span < _GREY_LEVELS:
        step = np.nextafter(step, np.float32(np.inf))
    levels = np.subtract(pixels, np.float32(vmin), dtype=np.float32)
    levels *= step
    np.floor(levels, out=levels)
    for level in range(1, _GREY_LEVELS + 1):
        if level * span % _GREY_LEVELS == 0:
            value = vmin + level * span // _GREY_LEVELS
            theirs = _cellprofiler_level(value, vmin, vmax, divisor)
            if theirs != level:
                np.copyto(levels, np.float32(theirs), where=pixels == value)
    return levels


def _cellprofiler_level(value: int, vmin: int, vmax: int, divisor: float) -> int:
    """The grey level CellProfiler gives one raw value: its float32 pixels, normalized per object
    in float32 and divided in float64, then // (1 / 8) and clipped."""

    def loaded(raw: int) -> np.float32:
        return np.float32(raw) / np.float32(divisor)

    shifted = np.float64(loaded(value) - loaded(vmin))
    span = np.float64(loaded(vmax) - loaded(vmin))
    return min(int((shifted / span) // (1.0 / _GREY_LEVELS)), _GREY_LEVELS - 1)
