"""Read the lake from notebooks: site images, profiles, crops, and the way back to raw objects.

    from imaging_assets.read import open_lake
    lake = open_lake(".demo/lake")                  # or "s3://bucket/lake", storage_options=...
    sites = lake.site_images("control_role = 'poscon'")      # keys + provenance, no pixels
    image = lake.site(sites["site_key"][0].as_py())          # image.array: (channels, H, W)
    raw = image.to_raw()                                     # back to raw intensities
    good = lake.site_images(qc="pass")                       # sites image QC did not flag

Image QC: each site's per-plate verdict is in site_qc.lance (qc_pass, qc_reasons), joined on
site_key. `site_images(qc=...)` adds those columns and filters on them; training reads
(`iter_batches`, `SiteDataset`) leave flagged sites out unless asked (qc="all" or "fail"). A site
without a verdict (its plate was written before image QC) counts as not flagged.

Images and profiles live in separate Lance datasets joined on keys (site_key, cell_id, source/
plate/well), so these joins never copy image bytes. The datasets are Arrow datasets: DuckDB and
Polars query them directly (`duckdb.sql("select ... from ds")` with `ds = lake.dataset(...)`,
`polars.scan_pyarrow_dataset(ds)`).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path

import lance
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image

from imaging_assets.core.lance_tables import open_dataset, quote
from imaging_assets.jump.images.decoding import site_stacks
from imaging_assets.jump.images.site_image import SiteImage, read_site
from imaging_assets.jump.quality import SITE_QC, site_qc_schema
from imaging_assets.jump.schemas import CHANNELS_METADATA_KEY, channel_prefix
from imaging_assets.read import profiles

PIXEL_SUFFIXES = ("_pixels", "_crop")
QC_CHOICES = ("pass", "fail", "all")
QC_COLUMNS = ("qc_pass", "qc_reasons")


def _check_qc(qc: str | None) -> None:
    if qc is not None and qc not in QC_CHOICES:
        raise ValueError(f"qc must be one of {QC_CHOICES} or None, got {qc!r}")


def _flagged_rows(keys: pa.Array | pa.ChunkedArray, flagged: pa.Array, qc: str | None) -> pa.Array:
    """Which of these site keys a read keeps: qc "pass" drops the flagged, "fail" keeps only
    them, "all" or None keeps all."""
    if qc in (None, "all"):
        return pa.array(np.ones(len(keys), dtype=bool))
    hit = pc.is_in(keys, value_set=flagged)
    return hit if qc == "fail" else pc.invert(hit)


class Lake:
    """The outputs of the code location under one root (local path or s3:// URI)."""

    def __init__(self, root: str, storage_options: dict | None = None) -> None:
        self.root = str(root).rstrip("/")
        self.storage_options = storage_options
        # one Lance session for every dataset this lake opens: index pages and file metadata stay
        # cached between calls (opening a dataset then costs ~0.01 ms instead of ~0.3 ms, and the
        # site_key index is not read again), while each open still sees the latest version
        self.session = lance.Session()
        self._last_schema: tuple[tuple[str, int], set[str], dict] | None = None

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
        """The latest version of a dataset of this lake."""
        return lance.dataset(
            self.uri(name), storage_options=self.storage_options, session=self.session
        )

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

    def site_images(
        self, filter: str | None = None, columns: list[str] | None = None, qc: str | None = None
    ) -> pa.Table:
        """Site rows (keys, metadata, provenance, quality features) without pixel columns unless
        asked for.

        qc: None (every row, as stored); "all" (every row, with its QC verdict: qc_pass and
        qc_reasons from site_qc, null where none); "pass" (the rows image QC did not flag);
        "fail" (the flagged ones)."""
        _check_qc(qc)
        if qc is None:
            return self._table("site_images", filter, columns)
        stored = None
        if columns is not None:
            stored = [c for c in dict.fromkeys(["site_key", *columns]) if c not in QC_COLUMNS]
        table = self._table("site_images", filter, stored)
        verdicts = self.site_qc(columns=["site_key", *QC_COLUMNS])
        found = pc.index_in(table["site_key"], value_set=verdicts["site_key"])
        for name in QC_COLUMNS:
            table = table.append_column(name, verdicts[name].take(found))
        flagged = verdicts.filter(pc.equal(verdicts["qc_pass"], False))["site_key"]
        table = table.filter(_flagged_rows(table["site_key"], flagged.combine_chunks(), qc))
        if columns is not None:
            table = table.select(list(dict.fromkeys([*columns, *QC_COLUMNS])))
        return table

    def site_qc(self, filter: str | None = None, columns: list[str] | None = None) -> pa.Table:
        """Each site's image-QC verdict (site_qc.lance): qc_pass, qc_reasons, the metric set, the
        plate's rules and thresholds (qc_rules, JSON); join profiles to it on site_key. Empty
        (with its columns) when no plate has been judged yet."""
        dataset = open_dataset(self.uri(SITE_QC), self.storage_options)
        if dataset is None:
            schema = site_qc_schema()
            return schema.empty_table().select(columns) if columns else schema.empty_table()
        return dataset.to_table(columns=columns, filter=filter)

    def flagged_site_keys(self) -> pa.Array:
        """The keys of the sites image QC flagged (qc_pass false), from site_qc."""
        table = self.site_qc(filter="qc_pass = false", columns=["site_key"])
        return table["site_key"].combine_chunks()

    def site(self, site_key: str, channels: list[str] | None = None) -> SiteImage:
        """One site's processed channels as a (C, H, W) array; `.provenance` (per channel: raw
        object, digests, intensity window, codec; the recipe and run) is read on first use."""
        dataset = self.dataset("site_images")
        names, metadata = self._schema(dataset)
        channels = tuple(channels or metadata.get(CHANNELS_METADATA_KEY, b"").decode().split(","))
        return read_site(dataset, names, site_key, channels)

    def _schema(self, dataset: lance.LanceDataset) -> tuple[set[str], dict]:
        """Column names and schema metadata of a dataset version, built once per version (the
        schema object is rebuilt on every access, ~0.1 ms for site_images)."""
        key = (dataset.uri, dataset.version)
        if self._last_schema is None or self._last_schema[0] != key:
            schema = dataset.schema
            self._last_schema = (key, set(schema.names), schema.metadata or {})
        return self._last_schema[1], self._last_schema[2]

    def iter_batches(
        self,
        filter: str | None = None,
        batch_size: int = 32,
        channels: list[str] | None = None,
        shuffle: bool = False,
        seed: int = 0,
        qc: str = "pass",
    ) -> Iterator[tuple[pa.Table, np.ndarray]]:
        """(keys, arrays of shape (B, C, H, W)) for training; sites of one shape per batch.

        shuffle=True reads the sites in a random order (fixed by seed): the filter is answered
        once (keys only), then each batch is a take of batch_size rows. Pixels are decoded
        whatever their codec. qc="pass" (the default) leaves out the sites image QC flagged,
        "fail" reads only those, "all" every site."""
        _check_qc(qc)
        channels = tuple(channels or self.channels())
        prefixes = [channel_prefix(c) for c in channels]
        columns = ["site_key", "source", "plate", "well", "site", "control_role", "jcp2022"]
        dataset = self.dataset("site_images")
        coded = f"{prefixes[0]}_codec" in dataset.schema.names
        for c in prefixes:
            columns += [f"{c}_pixels", f"{c}_shape", f"{c}_dtype"]
            columns += [f"{c}_codec"] if coded else []
        flagged = self.flagged_site_keys() if qc != "all" else pa.array([], pa.string())
        if shuffle or len(flagged) or qc == "fail":
            batches: Iterator[pa.RecordBatch] = _taken_batches(
                dataset, columns, filter, batch_size, seed if shuffle else None, flagged, qc
            )
        else:
            batches = dataset.to_batches(columns=columns, filter=filter, batch_size=batch_size)
        for batch in batches:
            table = pa.Table.from_batches([batch])
            yield table.select(columns[:7]), site_stacks(table, channels)

    # -- profiles ------------------------------------------------------------------------------

    def well_profiles(
        self,
        filter: str | None = None,
        columns: list[str] | None = None,
        features: list[str] | None = None,
    ) -> pa.Table:
        """Per-well rows: keys and metadata (or `columns`) and the features by their CellProfiler
        names (`features`, default: all), one float64 column each."""
        return profiles.well_profiles(
            self.dataset("well_profiles"), filter, features, columns,
            storage_options=self.storage_options,
        )  # fmt: skip

    def cell_profiles(
        self,
        filter: str | None = None,
        columns: list[str] | None = None,
        features: list[str] | None = None,
        limit: int | None = None,
    ) -> pa.Table:
        """Single cells: keys and metadata (or `columns`) and the features by their CellProfiler
        names (`features`, default: all), one float64 column each. Datasets written one column
        per feature (before the vector layout) read the same."""
        table = profiles.cell_profiles(
            self.dataset("cell_profiles"), filter, features, columns,
            storage_options=self.storage_options,
        )  # fmt: skip
        return table if limit is None else table.slice(0, limit)

    def feature_matrix(
        self, filter: str | None = None, features: list[str] | None = None, table: str = "cell"
    ) -> tuple[np.ndarray, list[str]]:
        """(rows, features) float64 array of cell (or `table="well"`) profiles and the names."""
        return profiles.feature_matrix(
            self.dataset(f"{table}_profiles"), filter, features,
            storage_options=self.storage_options,
        )  # fmt: skip

    def cell_profile(self, cell_id: str, with_crop: bool = True, with_site: bool = False) -> dict:
        """One cell in one call: its keys and every feature by name (found through the index on
        cell_id), its crop when cell_crops has it, and its site (a SiteImage) if asked."""
        cell = profiles.cell_profile(
            self.dataset("cell_profiles"), cell_id, storage_options=self.storage_options
        )
        if with_crop and "cell_crops" in self.datasets():
            with contextlib.suppress(KeyError):
                cell["crop"] = self.cell_crop(cell_id)
        if with_site:
            cell["site"] = self.site(cell["site_key"])
        return cell

    def to_wide_parquet(self, path: str, filter: str | None = None) -> int:
        """Cell profiles as the wide Parquet CytoTable and pycytominer read (same column names);
        returns the rows written."""
        return profiles.to_wide_parquet(
            self.dataset("cell_profiles"), path, filter, storage_options=self.storage_options
        )

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
        cell = self.cell_profiles(filter=f"cell_id = {quote(cell_id)}", features=[]).to_pylist()
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


# -- training: random access to sites (imaging_assets.read, issue 14) --------------------------


def _take_in_order(
    dataset: lance.LanceDataset, row_ids: np.ndarray, columns: list[str]
) -> pa.Table:
    """The rows with these row ids, in this order (repeats allowed): one take of the distinct
    ids, sorted for the read."""
    unique, inverse = np.unique(np.asarray(row_ids, dtype=np.uint64), return_inverse=True)
    table = dataset._take_rows(unique.tolist(), columns=columns)
    if table.num_rows != len(unique):
        raise KeyError(f"{len(unique) - table.num_rows} of the rows asked for are gone")
    return table.take(pa.array(inverse.reshape(-1)))


def _kept_row_ids(
    dataset: lance.LanceDataset, filter: str | None, flagged: pa.Array, qc: str | None
) -> tuple[np.ndarray, list[str]]:
    """Row ids and site keys of the filter's rows that the QC choice keeps, in row id order."""
    keys = dataset.to_table(columns=["site_key"], filter=filter, with_row_id=True)
    if len(flagged) or qc == "fail":
        keys = keys.filter(_flagged_rows(keys["site_key"], flagged, qc))
    keys = keys.sort_by("_rowid")
    return keys["_rowid"].to_numpy(), keys["site_key"].to_pylist()


def _taken_batches(
    dataset: lance.LanceDataset,
    columns: list[str],
    filter: str | None,
    batch_size: int,
    seed: int | None,
    flagged: pa.Array,
    qc: str | None,
) -> Iterator[pa.RecordBatch]:
    """Batches taken by row id: the filter (and the QC choice) answered once on keys only, then
    in row id order or, with a seed, in a random order fixed by it."""
    row_ids, _ = _kept_row_ids(dataset, filter, flagged, qc)
    if seed is not None:
        row_ids = np.random.default_rng(seed).permutation(row_ids)
    for start in range(0, len(row_ids), batch_size):
        table = _take_in_order(dataset, row_ids[start : start + batch_size], columns)
        yield table.combine_chunks().to_batches()[0]


class SiteDataset:
    """Sites as a map-style dataset for training loops; PyTorch's DataLoader takes it as is.

        from torch.utils.data import DataLoader
        sites = SiteDataset(".lake", filter="control_role = 'trt'")
        loader = DataLoader(sites, batch_size=32, shuffle=True, num_workers=2)
        for arrays, site_keys in loader:          # arrays: (B, C, H, W) uint8 tensors
            ...

    `sites[i]` is (array (C, H, W), site_key); `sites.__getitems__(indices)` (which DataLoader
    calls for a whole batch when present) reads the batch in one take. Nothing here imports
    torch. The filter is answered once, at construction, against one dataset version that stays
    pinned: every worker process sees the same sites even while plates are rewritten. The
    object pickles without its open dataset, so each worker opens its own on first use.
    `transform`, when given, is applied to each (C, H, W) array. Sites image QC flagged
    (site_qc.qc_pass false) are left out unless qc="all" (every site) or "fail" (only those).
    """

    def __init__(
        self,
        root: str,
        filter: str | None = None,
        channels: list[str] | None = None,
        storage_options: dict | None = None,
        version: int | None = None,
        transform=None,
        qc: str = "pass",
    ) -> None:
        _check_qc(qc)
        lake = Lake(root, storage_options)
        self.uri = lake.uri("site_images")
        self.storage_options = storage_options
        dataset = lance.dataset(self.uri, version=version, storage_options=storage_options)
        self.version = dataset.version
        self.channels = tuple(channels or Lake(root, storage_options).channels())
        prefixes = [channel_prefix(c) for c in self.channels]
        coded = f"{prefixes[0]}_codec" in dataset.schema.names
        self.columns = ["site_key"]
        for c in prefixes:
            self.columns += [f"{c}_pixels", f"{c}_shape", f"{c}_dtype"]
            self.columns += [f"{c}_codec"] if coded else []
        flagged = lake.flagged_site_keys() if qc != "all" else pa.array([], pa.string())
        if len(flagged) or qc == "fail":
            self._row_ids, self.site_keys = _kept_row_ids(dataset, filter, flagged, qc)
        else:
            keys = dataset.to_table(columns=["site_key"], filter=filter, with_row_id=True)
            self.site_keys = keys["site_key"].to_pylist()
            self._row_ids = keys["_rowid"].to_numpy()
        self.qc = qc
        self.transform = transform
        self._dataset: lance.LanceDataset | None = dataset

    def __len__(self) -> int:
        return len(self.site_keys)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_dataset"] = None  # each process opens its own
        return state

    def _open(self) -> lance.LanceDataset:
        if self._dataset is None:
            self._dataset = lance.dataset(
                self.uri, version=self.version, storage_options=self.storage_options
            )
        return self._dataset

    def __getitems__(self, indices: list[int]) -> list[tuple[np.ndarray, str]]:
        ids = self._row_ids[np.asarray(indices, dtype=np.int64)]
        table = _take_in_order(self._open(), ids, self.columns)
        arrays = site_stacks(table, self.channels)
        keys = table.column("site_key").to_pylist()
        transform = self.transform or (lambda array: array)
        return [(transform(array), key) for array, key in zip(arrays, keys, strict=True)]

    def __getitem__(self, index: int) -> tuple[np.ndarray, str]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"site {index} of {len(self)}")
        return self.__getitems__([index % len(self)])[0]


__all__ += ["SiteDataset"]
