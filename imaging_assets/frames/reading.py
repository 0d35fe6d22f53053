"""Read frame datasets from a lake root: query datasets, follow parent/child links, read frames.

Only the selected frames are read: the filter on (dataset_id, c, z, t, p) is answered by the
scalar indexes (BTREE + BITMAPs) and only the matching rows' pixels are fetched.

    from imaging_assets.frames import reading
    table = reading.query_datasets(root, project="ISP", start="2021-03-01", microscope="Nikon-Ti2")
    array = reading.read_frames(root, "ISP-2021-03-09-15-30-00-0001", c=[0, 2], z=range(4, 8), t=3)
    # array.shape == (1, 2, 4, Y, X): (T, C, Z, Y, X) over the selected indices
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

import lance
import numpy as np
import pyarrow as pa

from imaging_assets.core.lance_tables import open_dataset, quote
from imaging_assets.frames import queries
from imaging_assets.frames.ingest import decode_pixels
from imaging_assets.frames.schema import DATASET_FILES, DATASETS, FRAMES

FRAME_INFO_COLUMNS = [
    "frame_key",
    "dataset_id",
    "c",
    "z",
    "t",
    "p",
    "channel_name",
    "height",
    "width",
    "dtype",
    "nbytes",
    "sha256",
    "meta",
    "source_uri",
]
DATASET_LIST_COLUMNS = [
    "dataset_id",
    "project",
    "acquired_at",
    "microscope",
    "description",
    "parent_id",
    "upload_type",
    "format",
    "ingested",
    "nbr_channels",
    "nbr_slices",
    "nbr_timepoints",
    "nbr_positions",
    "im_height",
    "im_width",
    "dtype",
    "frame_count",
]


def table_uri(root: str, name: str) -> str:
    return f"{str(root).rstrip('/')}/{name}.lance"


def _open(root: str, name: str, storage_options: dict | None) -> lance.LanceDataset | None:
    return open_dataset(table_uri(root, name), storage_options)


def query_datasets(
    root: str,
    storage_options: dict | None = None,
    *,
    columns: list[str] | None = None,
    **criteria,
) -> pa.Table:
    """Datasets matching the criteria of queries.datasets_filter (project, start, end,
    microscope, description, dataset_id, parent_id, frames), ordered by acquisition time."""
    dataset = _open(root, DATASETS, storage_options)
    if dataset is None:
        return pa.table({})
    table = dataset.to_table(
        columns=columns or DATASET_LIST_COLUMNS, filter=queries.datasets_filter(**criteria)
    )
    if "acquired_at" in table.column_names and "dataset_id" in table.column_names:
        table = table.sort_by([("acquired_at", "ascending"), ("dataset_id", "ascending")])
    return table


def _row_of(root: str, name: str, dataset_id: str, storage_options: dict | None) -> dict | None:
    """The dataset's one row in table `name`, or None."""
    table = _open(root, name, storage_options)
    if table is None:
        return None
    rows = table.to_table(filter=f"dataset_id = {quote(dataset_id)}", limit=1).to_pylist()
    return rows[0] if rows else None


def get_dataset(root: str, dataset_id: str, storage_options: dict | None = None) -> dict:
    """The dataset's row (global metadata and summary parsed from JSON)."""
    row = _row_of(root, DATASETS, dataset_id, storage_options)
    if row is None:
        raise KeyError(f"dataset {dataset_id!r} is not registered in {table_uri(root, DATASETS)}")
    for key in ("global_meta", "summary"):
        if isinstance(row.get(key), str):
            row[key] = json.loads(row[key])
    return row


def parents(root: str, dataset_id: str, storage_options: dict | None = None) -> list[str]:
    """The chain of parents, nearest first."""
    chain, current, seen = [], dataset_id, {dataset_id}
    while True:
        parent = get_dataset(root, current, storage_options).get("parent_id")
        if not parent or parent in seen:
            return chain
        chain.append(parent)
        seen.add(parent)
        current = parent


def children(
    root: str, dataset_id: str, storage_options: dict | None = None, *, recursive: bool = False
) -> list[str]:
    """Datasets whose parent is `dataset_id` (with `recursive`, their children too)."""
    found: list[str] = []
    frontier = [dataset_id]
    while frontier:
        table = query_datasets(root, storage_options, columns=["dataset_id"], parent_id=frontier)
        frontier = (
            [d for d in table.column("dataset_id").to_pylist() if d not in found]
            if table.num_rows
            else []
        )
        found.extend(frontier)
        if not recursive:
            break
    return found


def dataset_file(root: str, dataset_id: str, storage_options: dict | None = None) -> dict:
    """Where a dataset of upload type `file` is kept, with its size and sha256."""
    row = _row_of(root, DATASET_FILES, dataset_id, storage_options)
    if row is None:
        raise KeyError(f"dataset {dataset_id!r} has no stored file")
    return row


@dataclass(frozen=True)
class Selection:
    """Resolved index lists of a frame selection (sorted ints per axis)."""

    dataset_id: str
    c: list[int]
    z: list[int]
    t: list[int]
    p: list[int]
    channel_names: list[str]

    def filter(self) -> str:
        return queries.frames_filter(self.dataset_id, self.c, self.z, self.t, self.p)

    @property
    def count(self) -> int:
        return len(self.c) * len(self.z) * len(self.t) * len(self.p)


def select(
    root: str,
    dataset_id: str,
    storage_options: dict | None = None,
    *,
    c: queries.Selector = None,
    z: queries.Selector = None,
    t: queries.Selector = None,
    p: queries.Selector = None,
) -> Selection:
    """Index lists for the selectors, checked against the dataset's summary."""
    row = get_dataset(root, dataset_id, storage_options)
    if row.get("upload_type") != "frames":
        raise ValueError(
            f"dataset {dataset_id} is of upload type {row.get('upload_type')}: no frames"
        )
    if not row.get("ingested"):
        raise ValueError(f"dataset {dataset_id} is registered but its frames are not ingested yet")
    names = list(row.get("channel_names") or [])
    sizes = {
        "c": row["nbr_channels"],
        "z": row["nbr_slices"],
        "t": row["nbr_timepoints"],
        "p": row["nbr_positions"],
    }
    resolved = {}
    for axis, selector in (("c", c), ("z", z), ("t", t), ("p", p)):
        values = queries.indices(selector, names, axis)
        if values is None:
            values = list(range(sizes[axis]))
        out_of_range = [v for v in values if v >= sizes[axis]]
        if out_of_range:
            raise ValueError(
                f"dataset {dataset_id}: {axis}={out_of_range} out of range (size {sizes[axis]})"
            )
        resolved[axis] = values
    return Selection(dataset_id=dataset_id, channel_names=names, **resolved)


def frames_table(
    root: str,
    dataset_id: str,
    storage_options: dict | None = None,
    *,
    columns: list[str] | None = None,
    **selectors,
) -> pa.Table:
    """Frame rows (no pixels) of the selection, ordered by (p, t, c, z)."""
    selection = select(root, dataset_id, storage_options, **selectors)
    dataset = _open(root, FRAMES, storage_options)
    table = dataset.to_table(columns=columns or FRAME_INFO_COLUMNS, filter=selection.filter())
    return table.sort_by(
        [(k, "ascending") for k in ("p", "t", "c", "z") if k in table.column_names]
    )


def iter_pixels(
    dataset: lance.LanceDataset, filter: str, columns: list[str], batch_size: int = 64
) -> Iterator[tuple[dict, bytes]]:
    """(row, pixel bytes) of the frames matching `filter`; big frames come from the blob column."""
    wanted = list(dict.fromkeys([*columns, "pixels"]))
    for batch in dataset.to_batches(
        columns=wanted, filter=filter, with_row_id=True, batch_size=batch_size
    ):
        rows = batch.to_pylist()
        blob_ids = [r["_rowid"] for r in rows if r["pixels"] is None]
        blobs = {}
        if blob_ids:
            for row_id, blob in zip(
                blob_ids, dataset.take_blobs("pixels_blob", ids=blob_ids), strict=True
            ):
                with blob:
                    blobs[row_id] = blob.readall()
        for row in rows:
            data = row.pop("pixels")
            yield row, data if data is not None else blobs[row["_rowid"]]


def read_frames(
    root: str,
    dataset_id: str,
    storage_options: dict | None = None,
    *,
    c: queries.Selector = None,
    z: queries.Selector = None,
    t: queries.Selector = None,
    p: queries.Selector = None,
) -> np.ndarray:
    """The selected frames as (T, C, Z, Y, X) over the selected indices, in index order.

    With one position (p an int, or a dataset with one position) the array is 5-D; with several
    selected positions it is (P, T, C, Z, Y, X). A selected frame missing from the dataset (a
    sparse acquisition) is an error naming it.
    """
    selection = select(root, dataset_id, storage_options, c=c, z=z, t=t, p=p)
    dataset = _open(root, FRAMES, storage_options)
    out: np.ndarray | None = None
    place = {
        axis: {v: i for i, v in enumerate(getattr(selection, axis))}
        for axis in ("c", "z", "t", "p")
    }
    filled = 0
    columns = ["c", "z", "t", "p", "height", "width", "dtype"]
    for row, data in iter_pixels(dataset, selection.filter(), columns):
        frame = decode_pixels(data, row["dtype"], row["height"], row["width"])
        if out is None:
            out = np.zeros(
                (
                    len(selection.p),
                    len(selection.t),
                    len(selection.c),
                    len(selection.z),
                    *frame.shape,
                ),
                dtype=frame.dtype.newbyteorder("="),
            )
        if frame.shape != out.shape[-2:]:
            raise ValueError(
                f"dataset {dataset_id}: frames of different shapes ({frame.shape} vs "
                f"{out.shape[-2:]}); read them one by one with frames_table + read_frame"
            )
        out[
            place["p"][row["p"]], place["t"][row["t"]], place["c"][row["c"]], place["z"][row["z"]]
        ] = frame
        filled += 1
    if out is None or filled != selection.count:
        raise KeyError(
            f"dataset {dataset_id}: {selection.count - filled} of the {selection.count} selected "
            f"frames are not in {table_uri(root, FRAMES)}"
        )
    single_position = p is None and len(selection.p) == 1 or isinstance(p, int)
    return out[0] if single_position else out


def read_frame(
    root: str,
    dataset_id: str,
    c: int,
    z: int,
    t: int,
    p: int = 0,
    storage_options: dict | None = None,
) -> np.ndarray:
    """One 2-D frame."""
    return read_frames(root, dataset_id, storage_options, c=c, z=z, t=t, p=p)[0, 0, 0]
