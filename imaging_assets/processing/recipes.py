"""Named, versioned recipes that turn a raw channel into what gets stored.

A recipe is a function of (image, illumination function, params) -> ProcessedChannel, plus a
registry entry with its version and default parameters. The version and parameters go into every
row's provenance; bump the version when the output of a recipe changes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from imaging_assets.processing.percentiles import percentile_bounds


@dataclass(frozen=True)
class ProcessedChannel:
    """The processed array and the raw intensity window it was scaled from.

    A processed uint8 value v maps back to raw intensity low + v / 255 * (high - low).
    """

    array: np.ndarray
    low: float
    high: float


@dataclass(frozen=True)
class Recipe:
    name: str
    version: str
    params: dict[str, Any] = field(default_factory=dict)
    needs_illum: bool = False

    def params_json(self) -> str:
        return json.dumps(self.params, sort_keys=True)


RecipeFunction = Callable[[np.ndarray, np.ndarray | None, dict[str, Any]], ProcessedChannel]


@dataclass(frozen=True)
class _Entry:
    function: RecipeFunction
    version: str
    defaults: dict[str, Any]
    needs_illum: bool = False


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The central size x size window (offset floor((H - size) / 2)); the whole image when smaller
    or when size is 0."""
    height, width = image.shape[-2:]
    if size <= 0 or (size >= height and size >= width):
        return image
    top = max((height - size) // 2, 0)
    left = max((width - size) // 2, 0)
    return image[..., top : top + min(size, height), left : left + min(size, width)]


def crop_offset(shape: tuple[int, int], size: int) -> tuple[int, int]:
    """(top, left) of center_crop's window in the full image."""
    height, width = shape
    if size <= 0 or (size >= height and size >= width):
        return 0, 0
    return max((height - size) // 2, 0), max((width - size) // 2, 0)


def scale_to_uint8(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """((x - low) / (high - low) * 255) clipped to [0, 255], truncated (the reference math)."""
    if high <= low:
        return np.zeros(image.shape, dtype=np.uint8)
    if image.dtype in (np.uint8, np.uint16):
        # Exact per value and fast: a lookup table over every possible integer intensity.
        values = np.arange(256 if image.dtype == np.uint8 else 65536, dtype=np.float64)
        lut = np.clip((values - low) / (high - low) * 255.0, 0, 255).astype(np.uint8)
        return np.take(lut, image)  # same values as lut[image], 2.5x faster (measured)
    scaled = (image.astype(np.float64) - low) / (high - low) * 255.0
    return np.clip(scaled, 0, 255).astype(np.uint8)


def uint8_to_raw(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Raw intensities back from scale_to_uint8's values: the middle of each value's bin.

    scale_to_uint8 truncates, so value v stands for raw in [low + v*step, low + (v+1)*step) with
    step = (high - low) / 255: the bin's middle is the unbiased estimate (the bottom, used before,
    was low by half a step on average: -62 raw units on a real Mito channel). 255 stands for raw
    >= high (clipped) and maps to high."""
    step = (high - low) / 255.0
    raw = low + (values.astype(np.float32) + np.float32(0.5)) * np.float32(step)
    return np.where(values == 255, np.float32(high), raw).astype(np.float32)


def robust_8bit_crop(
    image: np.ndarray, illum: np.ndarray | None, params: dict[str, Any]
) -> ProcessedChannel:
    cropped = center_crop(image, int(params["crop"]))
    low, high = percentile_bounds(cropped, float(params["percentile"]))
    return ProcessedChannel(scale_to_uint8(cropped, low, high), low, high)


def raw(image: np.ndarray, illum: np.ndarray | None, params: dict[str, Any]) -> ProcessedChannel:
    return ProcessedChannel(image, float(image.min()), float(image.max()))


def illum_corrected(
    image: np.ndarray, illum: np.ndarray | None, params: dict[str, Any]
) -> ProcessedChannel:
    if illum is None:
        raise ValueError("illum_corrected needs the plate's illumination function")
    if illum.shape != image.shape:
        raise ValueError(
            f"illumination function shape {illum.shape} does not match image shape {image.shape}"
        )
    corrected = image.astype(np.float32) / np.maximum(illum.astype(np.float32), 1e-6)
    cropped = center_crop(corrected, int(params["crop"]))
    low, high = percentile_bounds(cropped, float(params["percentile"]))
    return ProcessedChannel(scale_to_uint8(cropped, low, high), low, high)


ROBUST_DEFAULTS = {"crop": 768, "percentile": 1.0}
_REGISTRY: dict[str, _Entry] = {
    "robust_8bit_crop": _Entry(robust_8bit_crop, "1", ROBUST_DEFAULTS),
    "raw": _Entry(raw, "1", {}),
    "illum_corrected": _Entry(illum_corrected, "1", ROBUST_DEFAULTS, needs_illum=True),
}
RECIPES: dict[str, Recipe] = {
    name: Recipe(name, entry.version, dict(entry.defaults), entry.needs_illum)
    for name, entry in _REGISTRY.items()
}


def get_recipe(name: str, params: dict[str, Any] | None = None) -> Recipe:
    """A recipe with its defaults overridden by `params`; unknown names or params are errors."""
    if name not in _REGISTRY:
        raise ValueError(f"unknown recipe {name!r}; known: {', '.join(sorted(_REGISTRY))}")
    entry = _REGISTRY[name]
    params = dict(params or {})
    unknown = sorted(set(params) - set(entry.defaults))
    if unknown:
        raise ValueError(
            f"recipe {name!r} has no parameter {unknown[0]!r}; parameters: "
            f"{', '.join(sorted(entry.defaults)) or 'none'}"
        )
    merged = {**entry.defaults, **params}
    json.dumps(merged)  # parameters go into provenance: they must be JSON
    return Recipe(name, entry.version, merged, entry.needs_illum)


def apply_recipe(
    recipe: Recipe, image: np.ndarray, illum: np.ndarray | None = None
) -> ProcessedChannel:
    return _REGISTRY[recipe.name].function(image, illum, recipe.params)
