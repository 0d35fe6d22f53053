"""Image quality of every z-stack slice, measured while the slice is ingested, and the best-focused
slice of a specimen.

Each slice gets CellProfiler's MeasureImageQuality features (imaging_assets.processing.quality,
exactly `measure(slice)` on the raw decoded slice, on CellProfiler's scale raw / 65535 for uint16)
as typed columns of zstack_slices, named as CellProfiler names them with the image name "Slice":
ImageQuality_FocusScore_Slice, ImageQuality_Correlation_Slice_20, ... Beside them, `qc_metric_set`
("cellprofiler.MeasureImageQuality/1") and `qc_scale` (the divisor) say which definitions and
which scale the values are. Slices that are not uint8/uint16 get nulls (CellProfiler's integer
scaling does not apply).

Best focus: the z with the highest FocusScore (the normalized variance, Sun et al. 2004, the
focus function their comparison ranks first for brightfield). Dark neurites in focus add
variance; the same neurites out of focus are blurred into the background and add little; a slice
with no structure is only noise and illumination. Not the least negative PowerLogLogSlope: that
slope measures the shape of the spectrum, not the amount of detail, so a slice holding nothing
but camera noise (a flat spectrum, slope near 0) would win; on the sample collection it also
misses the slice holding the most in-focus nodes (bench_001: z 14 against FocusScore's 15, where
the skeleton has the most nodes). Ties go to the lowest z.

Cost, 2048x2048 uint16 slices on this project's 2-CPU test host (benchmarks/bench_stacks.py, and
the same specimen ingested with and without the metrics): `measure` takes ~40 ms CPU per slice
(the FFT of PowerLogLogSlope over half of it), on top of ~50-60 ms CPU per slice for reading,
decoding, hashing and writing: ingest CPU +60-75 %, peak RSS +60-90 MB (one more slice in flight
and the metrics' temporaries). It runs on a thread of its own beside the checksum threads, and a
slice's batch is finished only once the next slice is read, so on a host with a core to spare it
costs little wall time. Each run reports its own figure in the zstack_slices metadata
(`quality_ms_per_slice`); config `measure_quality: false` turns it off (the columns stay null).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence

import numpy as np
import pyarrow as pa

from imaging_assets.core.lance_tables import addable
from imaging_assets.processing import quality as cp

IMAGE = "Slice"  # CellProfiler's image name in the column names
CONFIG = cp.QualityConfig()  # spatial scale 20 (CellProfiler's default), part of two names
METRIC_SET_NAME = f"{cp.METRIC_SET}/{cp.METRIC_SET_VERSION}"
FOCUS_FEATURE = "FocusScore"


SLICE_QUALITY = cp.ImageQualityColumns(IMAGE, CONFIG)


def column(feature: str) -> str:
    """The zstack_slices column of one feature: ImageQuality_<Feature>_Slice[_20]."""
    return SLICE_QUALITY.column(feature)


COLUMNS: tuple[str, ...] = SLICE_QUALITY.names
FOCUS_COLUMN = column(FOCUS_FEATURE)
# added in 0.6: older lakes gain them (null for the slices written before)
FIELDS: list[pa.Field] = [addable(f) for f in SLICE_QUALITY.fields()]


def measure_slice(array: np.ndarray) -> dict[str, float | str | None]:
    """The quality columns of one raw decoded slice (nulls when it is not uint8/uint16)."""
    return SLICE_QUALITY.measure(array)


def timed_measure(array: np.ndarray) -> tuple[dict, float]:
    """measure_slice and the CPU seconds its thread spent (for the cost reported per slice)."""
    started = time.thread_time()
    values = measure_slice(array)
    return values, time.thread_time() - started


def best_focus(z: Sequence[int], focus: Iterable[float | None]) -> int | None:
    """The z with the highest FocusScore (the lowest such z on ties); None when none is known."""
    best, best_z = -math.inf, None
    for zi, score in sorted(zip(z, focus, strict=True), key=lambda pair: pair[0]):
        if score is not None and math.isfinite(score) and score > best:
            best, best_z = score, int(zi)
    return best_z
