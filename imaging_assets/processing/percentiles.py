"""Exact percentiles of integer images from one histogram instead of a sort.

np.percentile(image, q) with linear interpolation needs the order statistics at floor and ceil of
q/100 * (n - 1). For uint8/uint16 images a bincount gives every order statistic at once: the k-th
smallest value is the first bin whose cumulative count exceeds k. Same result, no float copy.
"""

from __future__ import annotations

import numpy as np


def _order_statistics(counts_cumsum: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    return np.searchsorted(counts_cumsum, ranks, side="right").astype(np.float64)


def percentiles(image: np.ndarray, qs: list[float] | tuple[float, ...]) -> np.ndarray:
    """np.percentile(image, qs) (linear), exact, via a histogram for unsigned integer images."""
    flat = image.ravel()
    if flat.size == 0:
        raise ValueError("percentiles of an empty image")
    if flat.dtype not in (np.uint8, np.uint16):
        return np.percentile(flat, qs)
    cumulative = np.cumsum(np.bincount(flat, minlength=256 if flat.dtype == np.uint8 else 0))
    positions = np.asarray(qs, dtype=np.float64) / 100.0 * (flat.size - 1)
    lower = np.floor(positions)
    upper = np.minimum(lower + 1, flat.size - 1)
    low_values = _order_statistics(cumulative, lower)
    high_values = _order_statistics(cumulative, upper)
    fraction = positions - lower
    return low_values + (high_values - low_values) * fraction


def percentile_bounds(image: np.ndarray, p: float) -> tuple[float, float]:
    """The (p, 100 - p) percentiles: the intensity window of robust scaling."""
    low, high = percentiles(image, (p, 100.0 - p))
    return float(low), float(high)
