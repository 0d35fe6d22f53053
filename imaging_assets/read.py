"""Read the lake from notebooks: site images, profiles, crops, and the way back to raw objects.

    from imaging_assets.read import open_lake
    lake = open_lake(".demo/lake")                  # or "s3://bucket/lake", storage_options=...
    sites = lake.site_images("control_role = 'poscon'")      # keys + provenance, no pixels
    image = lake.site(sites["site_key"][0].as_py())          # image.array: (channels, H, W)
    raw = image.to_raw()                                     # back to raw intensities

Images and profiles live in separate Lance datasets joined on keys (site_key, cell_id, source/
plate/well), so these joins never copy image bytes. The datasets are Arrow datasets: DuckDB and
Polars query them directly (`duckdb.sql("select ... from ds")` with `ds = lake.dataset(...)`,
`polars.scan_pyarrow_dataset(ds)`).
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import lance
import numpy as np
import pyarrow as pa
from PIL import Image

from imaging_assets.images.contact_sheet import site_array
from imaging_assets.lance_tables import quote
from imaging_assets.schemas import CHANNELS_METADATA_KEY, channel_prefix

PIXEL_SUFFIXES = ("_pixels", "_crop")


@dataclass(frozen=True)
class SiteImage:
    """One site: processed channels stacked (C, H, W) and the provenance of each."""

    site_key: str
    channels: tuple[str, ...]
    array: np.ndarray
    provenance: dict

    def to_raw(self) -> np.ndarray:
        """Processed values mapped back to raw intensities: low + v / 255 * (high - low)."""
        if self.array.dtype != np.uint8:
            return self.array.astype(np.float32)
        out = np.empty(self.array.shape, dtype=np.float32)
        for index, channel in enumerate(self.channels):
            low = self.provenance[channel]["low"]
            high = self.provenance[channel]["high"]
            out[index] = low + self.array[index].astype(np.float32) / 255.0 * (high - low)
        return out


class Lake:
    """The outputs of the code location under one root (local path or s3:// URI)."""

    def __init__(self, root: str, storage_options: dict | None = None) -> None:
        self.root = str(root).rstrip("/")
        self.storage_options = storage_options

    def __repr__(self) -> str:
        names = ", ".join(self.datasets()) or "no datasets yet"
        return f"Lake({self.root!r}: {names})"

    def uri(self, name: str) -> str:
        return f"{self.root}/{name}.lance"

    def datasets(self) -> list[str]:
        if "://" in self.root and not self.root.startswith("file://"):
            return []
        root = Path(self.root.removeprefix("file://"))
        return sorted(p.stem for p in root.glob("*.lance")) if root.exists() else []

    def dataset(self, name: str) -> lance.LanceDataset:
        return lance.dataset(self.uri(name), storage_options=self.storage_options)

    def _table(
        self, name: str, filter: str | None, columns: list[str] | None, limit: int | None = None
    ) -> pa.Table:
        dataset = self.dataset(name)
        if columns is None:
            columns = [n for n in dataset.schema.names if not n.endswith(PIXEL_SUFFIXES)]
        return dataset.to_table(columns=columns, filter=filter, limit=limit)

    # -- images --------------------------------------------------------------------------------

    def channels(self) -> tuple[str, ...]:
        metadata = self.dataset("site_images").schema.metadata or {}
        return tuple(metadata.get(CHANNELS_METADATA_KEY, b"").decode().split(","))

    def site_images(self, filter: str | None = None, columns: list[str] | None = None) -> pa.Table:
        """Site rows (keys, metadata, provenance) without pixel columns unless asked for."""
        return self._table("site_images", filter, columns)

    def site(self, site_key: str, channels: list[str] | None = None) -> SiteImage:
        """One site's processed channels as a (C, H, W) array, with per-channel provenance."""
        channels = tuple(channels or self.channels())
        columns = ["site_key", "recipe_name", "recipe_version", "recipe_params", "dagster_run_id"]
        fields = (
            "pixels",
            "shape",
            "dtype",
            "raw_uri",
            "raw_md5",
            "raw_sha256",
            "raw_size",
            "low",
            "high",
            "crop_offset",
        )
        dataset = self.dataset("site_images")
        if f"{channel_prefix(channels[0])}_read_uri" in dataset.schema.names:
            fields += ("read_uri",)  # where the bytes were read; raw_uri is the canonical URI
        for channel in channels:
            columns += [f"{channel_prefix(channel)}_{f}" for f in fields]
        rows = dataset.to_table(columns=columns, filter=f"site_key = {quote(site_key)}").to_pylist()
        if not rows:
            raise KeyError(f"site {site_key!r} is not in {self.uri('site_images')}")
        row = rows[0]
        arrays, provenance = [], {}
        for channel in channels:
            c = channel_prefix(channel)
            arrays.append(site_array(row, channel))
            provenance[channel] = {
                f: row[f"{c}_{f}"] for f in fields if f not in ("pixels", "shape", "dtype")
            }
        provenance["recipe"] = {
            "name": row["recipe_name"],
            "version": row["recipe_version"],
            "params": json.loads(row["recipe_params"]),
        }
        provenance["dagster_run_id"] = row["dagster_run_id"]
        return SiteImage(site_key, channels, np.stack(arrays), provenance)

    def iter_batches(
        self, filter: str | None = None, batch_size: int = 32, channels: list[str] | None = None
    ) -> Iterator[tuple[pa.Table, np.ndarray]]:
        """(keys, arrays of shape (B, C, H, W)) for training; sites of one shape per batch."""
        channels = tuple(channels or self.channels())
        prefixes = [channel_prefix(c) for c in channels]
        columns = ["site_key", "source", "plate", "well", "site", "control_role", "jcp2022"]
        for c in prefixes:
            columns += [f"{c}_pixels", f"{c}_shape", f"{c}_dtype"]
        for batch in self.dataset("site_images").to_batches(
            columns=columns, filter=filter, batch_size=batch_size
        ):
            rows = batch.to_pylist()
            stack = np.stack([np.stack([site_array(r, c) for c in channels]) for r in rows])
            yield pa.Table.from_batches([batch]).select(columns[:7]), stack

    # -- profiles ------------------------------------------------------------------------------

    def well_profiles(
        self, filter: str | None = None, columns: list[str] | None = None
    ) -> pa.Table:
        return self._table("well_profiles", filter, columns)

    def cell_profiles(
        self, filter: str | None = None, columns: list[str] | None = None, limit: int | None = None
    ) -> pa.Table:
        return self._table("cell_profiles", filter, columns, limit)

    def wells_with_profiles(self, filter: str | None = None) -> pa.Table:
        """Each imaged well (filtered on site_images columns) with its number of sites, its
        perturbation and its per-well profile row; joined on keys, no pixels read."""
        sites = self.site_images(
            filter,
            columns=[
                "source",
                "plate",
                "well",
                "site_key",
                "jcp2022",
                "control_role",
                "plate_type",
            ],
        )
        wells = sites.group_by(
            ["source", "plate", "well", "jcp2022", "control_role", "plate_type"]
        ).aggregate([("site_key", "count")])
        wells = wells.rename_columns([*wells.column_names[:-1], "sites"])
        return wells.join(self.well_profiles(), keys=["source", "plate", "well"], join_type="inner")

    def profiles_with_images(
        self, filter: str | None = None, columns: list[str] | None = None
    ) -> pa.Table:
        """Cell rows joined to their site's provenance (raw URIs, md5, recipe, run); no pixels."""
        cells = self.cell_profiles(filter, columns)
        images = self.site_images()
        keep = ["site_key"] + [
            n
            for n in images.column_names
            if n.endswith(("_raw_uri", "_read_uri", "_raw_md5"))
            or n in ("recipe_name", "recipe_version", "dagster_run_id")
        ]
        return cells.join(images.select(keep), keys="site_key", join_type="left outer")

    def cell_crop(self, cell_id: str) -> np.ndarray:
        """One cell's crop, (C, size, size), from cell_crops."""
        dataset = self.dataset("cell_crops")
        rows = dataset.to_table(filter=f"cell_id = {quote(cell_id)}").to_pylist()
        if not rows:
            raise KeyError(f"cell {cell_id!r} is not in {self.uri('cell_crops')}")
        row = rows[0]
        crops = [n for n in dataset.schema.names if n.endswith("_crop")]
        return np.stack(
            [np.frombuffer(row[n], dtype=row["dtype"]).reshape(row["crop_shape"]) for n in crops]
        )

    def trace_cell(self, cell_id: str, channel: str | None = None) -> dict:
        """From one single-cell row back to the raw object: uri, md5 (ours and CellProfiler's),
        recipe and the run that wrote the image."""
        cell = self.cell_profiles(filter=f"cell_id = {quote(cell_id)}").to_pylist()
        if not cell:
            raise KeyError(f"cell {cell_id!r} is not in {self.uri('cell_profiles')}")
        cell = cell[0]
        channel = channel or self.channels()[0]
        image = self.site(cell["site_key"], [channel])
        return {
            "cell_id": cell_id,
            "site_key": cell["site_key"],
            "channel": channel,
            "raw_uri": image.provenance[channel]["raw_uri"],
            "read_uri": image.provenance[channel].get("read_uri"),
            "raw_md5": image.provenance[channel]["raw_md5"],
            "profile_digest": cell.get(f"Image_MD5Digest_Orig{channel}"),
            "recipe_name": image.provenance["recipe"]["name"],
            "recipe_version": image.provenance["recipe"]["version"],
            "dagster_run_id": image.provenance["dagster_run_id"],
        }

    # -- specimen z-stacks (imaging_assets/stacks/reading.py) --------------------------------

    def stack(self, specimen: str):
        """A specimen's z-stack: .shape, .dtype, .z, .window(z=, y=, x=) reading only the bytes
        needed, .provenance."""
        from imaging_assets.stacks.reading import open_stack

        return open_stack(self.root, specimen, self.storage_options)

    def skeleton(self, specimen: str) -> pa.Table:
        """A specimen's SWC nodes in file order, with the SWC's raw URI, size and sha256."""
        from imaging_assets.stacks.reading import skeleton

        return skeleton(self.root, specimen, self.storage_options)

    # -- frame datasets (imaging_assets.frames.reading) -------------------------------------------

    def frame_datasets(
        self,
        project=None,
        start=None,
        end=None,
        microscope=None,
        description: str | None = None,
        **criteria,
    ) -> pa.Table:
        """Frame datasets by project, acquisition time range (end inclusive), microscope and
        description substring (also dataset_id=, parent_id=), answered by the indexes."""
        from imaging_assets.frames.reading import query_datasets

        return query_datasets(
            self.root,
            self.storage_options,
            project=project,
            start=start,
            end=end,
            microscope=microscope,
            description=description,
            **criteria,
        )

    def frame_dataset(self, dataset_id: str) -> dict:
        """One dataset's row: manifest fields, global metadata and summary."""
        from imaging_assets.frames.reading import get_dataset

        return get_dataset(self.root, dataset_id, self.storage_options)

    def frames(self, dataset_id: str, c=None, z=None, t=None, p=None) -> np.ndarray:
        """Selected frames as (T, C, Z, Y, X) (P first when several positions are selected),
        reading only those frames; c may be channel names, each selector an int, list or range."""
        from imaging_assets.frames.reading import read_frames

        return read_frames(self.root, dataset_id, self.storage_options, c=c, z=z, t=t, p=p)

    def frames_table(self, dataset_id: str, **selectors) -> pa.Table:
        """The selected frames' rows (indices, channel, sha256, per-frame metadata), no pixels."""
        from imaging_assets.frames.reading import frames_table

        return frames_table(self.root, dataset_id, self.storage_options, **selectors)

    def dataset_parents(self, dataset_id: str) -> list[str]:
        from imaging_assets.frames.reading import parents

        return parents(self.root, dataset_id, self.storage_options)

    def dataset_children(self, dataset_id: str, recursive: bool = False) -> list[str]:
        from imaging_assets.frames.reading import children

        return children(self.root, dataset_id, self.storage_options, recursive=recursive)

    @staticmethod
    def to_png(array: np.ndarray) -> bytes:
        """PNG bytes of a 2-D array (scaled to uint8 if needed), for notebook display."""
        if array.dtype != np.uint8:
            low, high = np.percentile(array, [1, 99])
            array = np.clip((array - low) / max(high - low, 1e-6) * 255, 0, 255).astype(np.uint8)
        sink = io.BytesIO()
        Image.fromarray(array).save(sink, format="PNG")
        return sink.getvalue()


def open_lake(root: str, storage_options: dict | None = None) -> Lake:
    """A lake by root: a folder, file:// or s3:// (pass Lance storage options for S3)."""
    return Lake(root, storage_options)


__all__ = ["Lake", "SiteImage", "open_lake"]
