"""One site read back from site_images: its pixels at once, its provenance when first asked for.

A lookup is an index search for the row id and one take of that row (bench_reads.py, part 4). The
take's cost grows with the columns read (about 0.05 ms each), and the provenance is 60 of them for
5 channels, so the first take reads only what decoding needs (pixels, shape, dtype, codec) and the
provenance comes from a second take of the same row of the same dataset version on first access:
what you read is always what was written together, even if the plate is rewritten in between.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import lance
import numpy as np
import pyarrow as pa

from imaging_assets.core.lance_tables import quote
from imaging_assets.jump.images.decoding import site_stacks
from imaging_assets.jump.schemas import channel_prefix
from imaging_assets.processing.recipes import uint8_to_raw

PIXEL_FIELDS = ("pixels", "shape", "dtype")
PROVENANCE_FIELDS = (
    "raw_uri",
    "raw_md5",
    "raw_sha256",
    "raw_size",
    "low",
    "high",
    "crop_offset",
)
ADDED_FIELDS = ("read_uri", "codec")  # written since 0.2 / 0.3: older lakes may lack them
RUN_COLUMNS = ("recipe_name", "recipe_version", "recipe_params", "dagster_run_id")


class SiteImage:
    """One site: processed channels stacked (C, H, W) and the provenance of each channel.

    `provenance` maps each channel to its raw object (raw_uri, read_uri, raw_md5, raw_sha256,
    raw_size), its intensity window (low, high), crop offset and codec, plus "recipe" and
    "dagster_run_id"; it is read on first access.
    """

    def __init__(
        self,
        site_key: str,
        channels: tuple[str, ...],
        array: np.ndarray,
        provenance: dict | Callable[[], dict],
    ) -> None:
        self.site_key = site_key
        self.channels = tuple(channels)
        self.array = array
        self._provenance = provenance

    def __repr__(self) -> str:
        return (
            f"SiteImage({self.site_key!r}, channels={self.channels}, "
            f"array={self.array.shape} {self.array.dtype})"
        )

    @property
    def provenance(self) -> dict:
        if callable(self._provenance):
            self._provenance = self._provenance()
        return self._provenance

    def to_raw(self) -> np.ndarray:
        """Processed values mapped back to raw intensities, from the bounds stored with the row:
        each 8-bit value to the middle of the raw range it stands for (processing.recipes)."""
        if self.array.dtype != np.uint8:
            return self.array.astype(np.float32)
        out = np.empty(self.array.shape, dtype=np.float32)
        for index, channel in enumerate(self.channels):
            bounds = self.provenance[channel]
            out[index] = uint8_to_raw(self.array[index], bounds["low"], bounds["high"])
        return out


def read_site(
    dataset: lance.LanceDataset, names: set[str], site_key: str, channels: tuple[str, ...]
) -> SiteImage:
    """The site with this key from an open site_images dataset whose column names are `names`.

    The BTREE index on site_key finds the row id (fragments written since the index was last
    brought up to date are scanned), then one take reads that row's pixel columns."""
    found = dataset.to_table(columns=[], filter=f"site_key = {quote(site_key)}", with_row_id=True)
    if found.num_rows == 0:
        raise KeyError(f"site {site_key!r} is not in {dataset.uri}")
    row_id = found["_rowid"][0].as_py()
    prefixes = [channel_prefix(c) for c in channels]
    coded = f"{prefixes[0]}_codec" in names
    columns = [f"{c}_{f}" for c in prefixes for f in PIXEL_FIELDS + (("codec",) if coded else ())]
    table = dataset._take_rows([row_id], columns=columns)
    if table.num_rows == 0:
        raise KeyError(f"site {site_key!r} was removed from {dataset.uri}")
    fields = PROVENANCE_FIELDS + tuple(f for f in ADDED_FIELDS if f"{prefixes[0]}_{f}" in names)
    return SiteImage(
        site_key,
        channels,
        site_stacks(table, channels)[0],
        lambda: _provenance(dataset, row_id, channels, fields, table),
    )


def _provenance(
    dataset: lance.LanceDataset,
    row_id: int,
    channels: tuple[str, ...],
    fields: tuple[str, ...],
    pixels: pa.Table,
) -> dict:
    """Each channel's provenance and the run's, from the row the pixels came from."""
    taken = [f for f in fields if f != "codec"]  # the codec came with the pixels
    columns = list(RUN_COLUMNS) + [f"{channel_prefix(c)}_{f}" for c in channels for f in taken]
    table = dataset._take_rows([row_id], columns=columns)
    if table.num_rows == 0:
        raise KeyError(f"row {row_id} of {dataset.uri} (version {dataset.version}) is gone")
    row = table.to_pylist()[0]
    if "codec" in fields:
        row |= pixels.select([f"{channel_prefix(c)}_codec" for c in channels]).to_pylist()[0]
    provenance: dict = {
        channel: {f: row[f"{channel_prefix(channel)}_{f}"] for f in fields} for channel in channels
    }
    provenance["recipe"] = {
        "name": row["recipe_name"],
        "version": row["recipe_version"],
        "params": json.loads(row["recipe_params"]),
    }
    provenance["dagster_run_id"] = row["dagster_run_id"]
    return provenance


__all__ = ["SiteImage", "read_site"]
