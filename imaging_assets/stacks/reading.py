"""Read z-stacks and skeletons from the lake, reading only the bytes a window needs.

    stack = open_stack(lake_root, "specimen_01")        # or an s3:// root + storage_options
    stack.shape, stack.dtype, stack.z                    # (slices, height, width); z values
    block = stack.window(z=slice(10, 20), y=slice(1700, 2212), x=slice(2100, 2612))
    stack.best_focus_z, stack.quality                    # the in-focus z; metrics per slice
    nodes = skeleton(lake_root, "specimen_01")           # one row per SWC node

A window is one `read_blob_ranges` call: one byte range per (slice, row) of the window, or one per
slice when the window spans whole rows; Lance coalesces and schedules them. `z`, `y` and `x` index
positions (0..shape-1) like a NumPy array; `stack.z[i]` is the z value of position i.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import lance
import numpy as np
import pyarrow as pa

from imaging_assets.core.lance_tables import open_dataset, quote
from imaging_assets.stacks import quality
from imaging_assets.stacks.datasets import SKELETONS, SLICES

PROVENANCE_COLUMNS = (
    "z",
    "raw_uri",
    "raw_size",
    "raw_etag",
    "raw_md5",
    "raw_sha256",
    "tiff_compression",
    "pixels_mode",
    "qc_metric_set",
    "package_version",
    "dagster_run_id",
    "written_at",
)


def dataset_uri(lake_root: str, name: str) -> str:
    return f"{str(lake_root).rstrip('/')}/{name}.lance"


def _as_range(index, size: int) -> tuple[int, int, int]:
    if index is None:
        return 0, size, 1
    if isinstance(index, int | np.integer):
        i = int(index) + (size if index < 0 else 0)
        if not 0 <= i < size:
            raise IndexError(f"index {index} out of range for size {size}")
        return i, i + 1, 1
    start, stop, step = index.indices(size)
    if step < 1:
        raise ValueError("window steps must be positive")
    return start, max(start, stop), step


@dataclass
class Stack:
    """One specimen's slices in the lake: shape, dtype and windowed reads with provenance."""

    specimen: str
    dataset: lance.LanceDataset
    rows: pa.Table  # one row per slice, sorted by z, with _rowaddr and provenance
    shape: tuple[int, int, int] = field(init=False)
    dtype: np.dtype = field(init=False)

    def __post_init__(self) -> None:
        heights = set(self.rows["height"].to_pylist())
        widths = set(self.rows["width"].to_pylist())
        dtypes = set(self.rows["dtype"].to_pylist())
        if len(heights) != 1 or len(widths) != 1 or len(dtypes) != 1:
            raise ValueError(f"{self.specimen}: slices differ in size or dtype")
        self.shape = (self.rows.num_rows, heights.pop(), widths.pop())
        self.dtype = np.dtype(dtypes.pop()).newbyteorder("<")

    @property
    def z(self) -> list[int]:
        return self.rows["z"].to_pylist()

    @property
    def provenance(self) -> dict:
        """Where the pixels came from: dataset and version, and per slice the raw object."""
        columns = [c for c in PROVENANCE_COLUMNS if c in self.rows.column_names]
        return {
            "specimen": self.specimen,
            "dataset_uri": self.dataset.uri,
            "dataset_version": self.dataset.version,
            "slices": self.rows.select(columns).to_pylist(),
        }

    @property
    def quality(self) -> pa.Table:
        """z and CellProfiler's image-quality features of each slice (stacks/quality.py); null
        where not measured (slices written before the metrics existed)."""
        columns = [
            self.rows[name] if name in self.rows.column_names else pa.nulls(len(self.rows), t)
            for name, t in [("z", pa.int32())] + [(c, pa.float64()) for c in quality.COLUMNS]
        ]
        return pa.table(columns, names=["z", *quality.COLUMNS])

    @property
    def best_focus_z(self) -> int | None:
        """The z (value, not position) of the best-focused slice: the highest FocusScore
        (stacks/quality.py says why); None when no slice was measured."""
        if quality.FOCUS_COLUMN not in self.rows.column_names:
            return None
        return quality.best_focus(self.z, self.rows[quality.FOCUS_COLUMN].to_pylist())

    def window(self, z=None, y=None, x=None) -> np.ndarray:
        """The (z, y, x) window as an array; reads only the rows of each slice it covers.

        Like NumPy indexing: slices keep an axis, an integer drops it."""
        nz, height, width = self.shape
        z0, z1, zs = _as_range(z, nz)
        y0, y1, ys = _as_range(y, height)
        x0, x1, xs = _as_range(x, width)
        out = np.empty((len(range(z0, z1, zs)), y1 - y0, x1 - x0), dtype=self.dtype)
        if out.size == 0:
            return out[:, ::ys, ::xs]  # empty window: nothing to read
        item = self.dtype.itemsize
        addresses = self.rows["_rowaddr"].to_pylist()
        whole_rows = x0 == 0 and x1 == width
        requests = []
        for zi in range(z0, z1, zs):
            address = addresses[zi]
            if whole_rows:
                requests.append((address, y0 * width * item, (y1 - y0) * width * item))
            else:
                requests += [
                    (address, (row * width + x0) * item, (x1 - x0) * item) for row in range(y0, y1)
                ]
        results = self.dataset.read_blob_ranges("pixels", requests, selector="addresses")
        if whole_rows:
            for i, (_, _, data) in enumerate(results):
                out[i] = np.frombuffer(data, dtype=self.dtype).reshape(y1 - y0, width)
        else:
            flat = out.reshape(-1, x1 - x0)
            for i, (_, _, data) in enumerate(results):
                flat[i] = np.frombuffer(data, dtype=self.dtype)
        out = out[:, ::ys, ::xs]
        drop = tuple(0 if isinstance(i, int | np.integer) else slice(None) for i in (z, y, x))
        return out.astype(out.dtype.newbyteorder("="), copy=False)[drop]

    def slice(self, position: int) -> np.ndarray:
        """One whole slice (position in the stack, not the z value)."""
        return self.window(z=position)

    def __getitem__(self, key) -> np.ndarray:
        key = key if isinstance(key, tuple) else (key,)
        return self.window(*key, *([None] * (3 - len(key))))


def open_stack(
    lake_root: str, specimen: str, storage_options: dict | None = None, version: int | None = None
) -> Stack:
    dataset = lance.dataset(
        dataset_uri(lake_root, SLICES), version=version, storage_options=storage_options
    )
    wanted = ["z", "height", "width", "dtype", *PROVENANCE_COLUMNS[1:], *quality.COLUMNS]
    present = set(dataset.schema.names)  # a lake written before a column existed lacks it
    columns = [c for c in wanted if c in present]
    rows = dataset.to_table(
        columns=columns, filter=f"specimen = {quote(specimen)}", with_row_address=True
    ).sort_by("z")
    if rows.num_rows == 0:
        raise KeyError(f"specimen {specimen!r} has no slices in {dataset.uri}")
    return Stack(specimen, dataset, rows)


def skeleton(lake_root: str, specimen: str, storage_options: dict | None = None) -> pa.Table:
    """The specimen's SWC nodes in file order, each row with the SWC's raw URI, size and sha256."""
    uri = dataset_uri(lake_root, SKELETONS)
    dataset = open_dataset(uri, storage_options)
    table = (
        None
        if dataset is None
        else dataset.to_table(filter=f"specimen = {quote(specimen)}").sort_by("line")
    )
    if table is None or table.num_rows == 0:
        raise KeyError(f"specimen {specimen!r} has no skeleton in {uri}")
    return table
