"""Benchmark: CellProfiler image-quality metrics per image (imaging_assets.processing.quality).

On each real fixture TIFF (15 Phenix channels, 1080x1080 uint16, LZW) and on a synthetic
1080x1080 uint16 image, in one process, single-threaded, ms of CPU (time.process_time) per image,
the best of --trials batches of --repeat calls:
  (a) measure(): the whole feature set, and its stages (which features each stage yields);
  (b) the reference: a plain transcription of CellProfiler's code with numpy/scipy (float64 image,
      np.median, scipy.ndimage label means and sums, np.fft.fft2, a bincount co-occurrence
      matrix) for the same definitions; its values are also compared with measure()'s;
  (c) the budget unit: decoding the same TIFF bytes with tifffile.imread, and with the
      pipeline's decode_tiff (libtiff through imagecodecs).
Usage: python benchmarks/bench_quality.py [--repeat 20] [--trials 5] [--reference-repeat 2]
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")  # per-core figures; set before numpy loads BLAS

import argparse  # noqa: E402
import io  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import scipy  # noqa: E402
import tifffile  # noqa: E402
from scipy import ndimage  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from imaging_assets.processing import decode_tiff, quality  # noqa: E402

REAL = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "real"
FOLDERS = ("cpg0000_BR00117006", "phenix_site_v1", "phenix_site_v5")
SCALE = quality.QualityConfig().local_focus_scale


def cpu_ms(function: Callable[[], object], repeat: int, trials: int) -> float:
    """Best batch mean of CPU ms per call (the least disturbed by other load on the machine)."""
    function()
    best = float("inf")
    for _ in range(trials):
        started = time.process_time()
        for _ in range(repeat):
            function()
        best = min(best, (time.process_time() - started) / repeat * 1e3)
    return best


def real_images() -> list[tuple[str, bytes]]:
    if not REAL.is_dir():
        sys.exit(f"bench_quality: real fixtures not found at {REAL}; clone ../shared beside it")
    paths = [p for folder in FOLDERS for p in sorted((REAL / folder / "images").glob("*.tiff"))]
    if not paths:
        sys.exit(f"bench_quality: no *.tiff under {REAL}/{{{','.join(FOLDERS)}}}/images")
    return [(f"{p.parent.parent.name}/{p.name}", p.read_bytes()) for p in paths]


def synthetic_image() -> tuple[str, bytes]:
    """Blurred bright spots on a Poisson background, LZW-compressed like the real ones."""
    rng = np.random.default_rng(0)
    image = rng.poisson(300, (1080, 1080)).astype(np.float64)
    spots = np.zeros_like(image)
    spots[rng.integers(0, 1080, 400), rng.integers(0, 1080, 400)] = 4e6
    image += ndimage.gaussian_filter(spots, 6)
    pixels = np.clip(image, 0, 65535).astype(np.uint16)
    sink = io.BytesIO()
    tifffile.imwrite(sink, pixels, compression="lzw")
    return "synthetic 1080x1080", sink.getvalue()


def reference(raw: np.ndarray, scale: int = SCALE) -> dict[str, float]:
    """CellProfiler 4.2.8 MeasureImageQuality + centrosome, transcribed plainly, float64."""
    image = raw.astype(np.float64) / np.iinfo(raw.dtype).max
    n = image.size
    mean = image.mean()
    median = np.median(image)
    return {
        "FocusScore": ((image - mean) ** 2).sum() / (n * mean) if mean > 0 else 0.0,
        "LocalFocusScore": _reference_local_focus(image, scale),
        "Correlation": _reference_correlation(image, scale),
        "PowerLogLogSlope": _reference_slope(image),
        "PercentMaximal": 100.0 * np.sum(image == image.max()) / n,
        "PercentMinimal": 100.0 * np.sum(image == image.min()) / n,
        "TotalArea": float(n),
        "TotalIntensity": image.sum(),
        "MeanIntensity": mean,
        "MedianIntensity": median,
        "StdIntensity": image.std(),
        "MADIntensity": np.median(np.abs(image - median)),
        "MinIntensity": image.min(),
        "MaxIntensity": image.max(),
    }


def _reference_local_focus(image: np.ndarray, scale: int) -> float:
    height, width = image.shape
    i, j = np.mgrid[0:height, 0:width].astype(float)
    m, n = (np.array(image.shape) + scale - 1) // scale
    grid = (i * m / height).astype(int) * n + (j * n / width).astype(int) + 1
    labels = np.arange(1, m * n + 1)
    means = np.asarray(ndimage.mean(image, grid, labels))
    sums = np.asarray(ndimage.sum((image - means[grid - 1]) ** 2, grid, labels))
    counts = np.asarray(ndimage.sum(np.ones(image.shape), grid, labels))
    keep = means != 0
    normalized = sums[keep] / (counts[keep] * means[keep])
    median = np.median(normalized)
    return float(np.var(normalized) / median) if median > 0 else 0.0


def _reference_correlation(image: np.ndarray, scale: int) -> float:
    span = image.max() - image.min()
    normalized = (image - image.min()) / (span if span > 0 else 1.0)
    levels = np.clip((normalized // 0.125).astype(int), 0, 7)
    a, b = levels[:, :-scale], levels[:, scale:]
    pairs = np.bincount((a * 8 + b).ravel(), minlength=64).reshape(8, 8) / a.size
    grey = np.arange(1, 9)
    px, py = pairs.sum(1), pairs.sum(0)
    mux, muy = (grey * px).sum(), (grey * py).sum()
    sx, sy = np.sqrt(((grey - mux) ** 2 * px).sum()), np.sqrt(((grey - muy) ** 2 * py).sum())
    with np.errstate(divide="ignore", invalid="ignore"):
        value = ((np.outer(grey, grey) * pairs).sum() - mux * muy) / (sx * sy)
    return float(value) if np.isfinite(value) else 0.0


def _reference_slope(image: np.ndarray) -> float:
    radii2 = np.arange(image.shape[0])[:, None] ** 2 + np.arange(image.shape[1]) ** 2
    radii2 = np.minimum(radii2, np.flipud(radii2))
    radii2 = np.minimum(radii2, np.fliplr(radii2))
    if np.ptp(image) == 0:
        return 0.0
    image = image / np.median(np.abs(image - image.mean()))
    power = np.abs(np.fft.fft2(image - image.mean())) ** 2
    radii = np.floor(np.sqrt(radii2)).astype(int) + 1
    labels = np.arange(2, np.floor(min(image.shape) / 8.0)).astype(int)
    if labels.size < 2:
        return 0.0
    ring = np.asarray(ndimage.sum(power, radii, labels))
    keep = ring > 0
    design = np.stack([np.log(labels[keep]), np.ones(keep.sum())], axis=1)
    return float(scipy.linalg.lstsq(design, np.log(ring[keep]))[0][0])


def stages(raw: np.ndarray) -> dict[str, Callable[[], object]]:
    """measure()'s parts, each named by the features it yields (the private helpers it calls)."""
    q = quality
    vmin, vmax, n = int(raw.min()), int(raw.max()), raw.size
    mean = float(raw.mean())
    tiles = q._tile_sums(raw, SCALE, vmax)
    return {
        "Min/Max + PercentMaximal/Minimal": lambda: (
            raw.min(),
            raw.max(),
            np.count_nonzero(raw == vmax) / n,
            np.count_nonzero(raw == vmin) / n,
        ),
        "Median + MAD": lambda: q._median_and_mad(raw),
        "tile sums (Focus, Total, Mean, Std)": lambda: q._tile_sums(raw, SCALE, vmax),
        "LocalFocusScore from the tile sums": lambda: q._local_focus_score(*tiles),
        "Correlation": lambda: q._correlation(raw, vmin, vmax, SCALE, 65535.0),
        "PowerLogLogSlope": lambda: q._power_log_log_slope(raw, mean),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--reference-repeat", type=int, default=2)
    args = parser.parse_args()
    images = [*real_images(), synthetic_image()]
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"tifffile {tifffile.__version__}, {platform.machine()}; ms CPU per image, "
        f"best of {args.trials} x {args.repeat}"
    )
    header = (
        f"{'image':52s} {'measure':>8s} {'reference':>10s} {'tifffile':>9s} {'decode_tiff':>11s}"
    )
    print(header + f" {'measure/tifffile':>17s}")
    rows, worst = [], {}
    for name, data in images:
        raw = tifffile.imread(io.BytesIO(data))
        ours = cpu_ms(lambda raw=raw: quality.measure(raw), args.repeat, args.trials)
        theirs = cpu_ms(lambda raw=raw: reference(raw), args.reference_repeat, 1)
        tiff = cpu_ms(lambda data=data: tifffile.imread(io.BytesIO(data)), args.repeat, args.trials)
        pipeline = cpu_ms(lambda data=data: decode_tiff(data), args.repeat, args.trials)
        rows.append((name, ours, theirs, tiff, pipeline))
        print(
            f"{name:52s} {ours:8.2f} {theirs:10.1f} {tiff:9.2f} {pipeline:11.2f} "
            f"{100 * ours / tiff:16.0f}%"
        )
        got, expected = quality.measure(raw), reference(raw)
        for feature in quality.FEATURES:
            difference = abs(got[feature] - expected[feature])
            relative = difference / abs(expected[feature]) if expected[feature] else difference
            worst[feature] = max(worst.get(feature, 0.0), relative)
    real = rows[:-1]
    means = [sum(row[k] for row in real) / len(real) for k in range(1, 5)]
    print(
        f"{'mean of the ' + str(len(real)) + ' real images':52s} {means[0]:8.2f} "
        f"{means[1]:10.1f} {means[2]:9.2f} {means[3]:11.2f} {100 * means[0] / means[2]:16.0f}%"
    )
    print(f"speed-up over the reference: {means[1] / means[0]:.0f}x")
    print("\nmeasure() by stage, mean ms CPU over the real images:")
    per_stage: dict[str, float] = {}
    for _, data in images[:-1]:
        raw = tifffile.imread(io.BytesIO(data))
        for stage, function in stages(raw).items():
            per_stage[stage] = per_stage.get(stage, 0.0) + cpu_ms(
                function, args.repeat, args.trials
            ) / len(real)
    for stage, ms in per_stage.items():
        print(f"  {stage:40s} {ms:6.2f}")
    print(f"  {'sum of the stages':40s} {sum(per_stage.values()):6.2f}")
    print("\nlargest relative difference, measure() vs the float64 reference, all images:")
    for feature in quality.FEATURES:
        print(f"  {feature:18s} {worst[feature]:.1e}")


if __name__ == "__main__":
    main()
