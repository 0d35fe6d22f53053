"""Read frame datasets from a lake root: query datasets, follow parent/child links, read frames.

A partial read touches the frames table only, and only the selected rows (per process):
- one Lance session and one handle per table, kept at the table's latest version: every call
  checks for a newer version (local lake: a stat of `_versions/`, which proves "no new version"
  when it is unchanged since a check made after its last change settled; otherwise Lance lists
  the versions) and opens the table again only when there is one;
- a frame directory per (table version, dataset): (c, z, t, p) -> row address, shape, dtype, plus
  the axis sizes and channel names, built by one query answered by the dataset_id BTREE and
  dropped with its version (no stale frames, no mix of two ingests);
- the selected rows' pixels fetched by row address, no scan and no filter: from the fragment's
  data file through a cached Lance file reader (data files never change; opened in the
  background after the file's first read), else with Lance's take; then one copy each into the
  output array.

    from imaging_assets.frames import reading
    table = reading.query_datasets(root, project="ISP", start="2021-03-01", microscope="Nikon-Ti2")
    array = reading.read_frames(root, "ISP-2021-03-09-15-30-00-0001", c=[0, 2], z=range(4, 8), t=3)
    # array.shape == (1, 2, 4, Y, X): (T, C, Z, Y, X) over the selected indices
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import NamedTuple

import lance
import numpy as np
import pyarrow as pa
from lance.file import LanceFileReader

from imaging_assets.core.lance_tables import open_dataset, quote
from imaging_assets.frames import queries
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


# -- per process: one Lance session, the latest handle of each table and what was read at it ----

SETTLED_NS = 2_000_000_000
"""A `_versions/` folder whose last change is this much older (2 s, above the coarsest file-time
granularity of common local file systems) than a stat of it cannot change again without its
modification time changing: an equal stat later proves no version was added (git's "racily
clean" rule). A folder changed more recently is checked by listing the versions."""
MAX_TABLES = 64
MAX_DIRECTORY_FRAMES = 2_000_000  # frame directories kept per table version (~100 B per frame)
MAX_FILE_READERS = 1024


class _Lru(OrderedDict):
    def __init__(self, budget: int) -> None:
        super().__init__()
        self.budget, self.used = budget, 0

    def get_fresh(self, key):
        item = self.get(key)
        if item is None:
            return None
        self.move_to_end(key)
        return item[0]

    def put(self, key, value, size: int = 1) -> None:
        if key in self:
            self.used -= self.pop(key)[1]
        self[key] = (value, size)
        self.used += size
        while self.used > self.budget and len(self) > 1:
            self.used -= self.popitem(last=False)[1][1]


@dataclass
class _Snapshot:
    """A table at one version, and what was read from that version (dropped with it)."""

    dataset: lance.LanceDataset
    directories: _Lru = field(default_factory=lambda: _Lru(MAX_DIRECTORY_FRAMES))
    readers: dict = field(default_factory=dict)  # fragment id -> reader | Future | None
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class _Table:
    snapshot: _Snapshot
    # local tables: (st_dev, st_ino, st_mtime_ns) of `_versions/` when the snapshot was the latest
    folder: tuple[int, int, int] | None
    settled: bool  # that folder was unchanged for SETTLED_NS already: an equal stat proves it


class _Cache:
    def __init__(self) -> None:
        self.pid = os.getpid()
        self.session = lance.Session()
        self.tables: OrderedDict[tuple, _Table] = OrderedDict()
        self.readers = _Lru(MAX_FILE_READERS)  # data files never change: readers stay valid
        self.opener: ThreadPoolExecutor | None = None  # opens file readers off the read path
        self.lock = threading.Lock()


_cache = _Cache()


def _process_cache() -> _Cache:
    global _cache
    if _cache.pid != os.getpid():  # a forked child: Lance handles do not cross a fork
        _cache = _Cache()
    return _cache


def clear_cache() -> None:
    """Forget every table handle, frame directory and file reader this process keeps."""
    global _cache
    _cache = _Cache()


def _local_versions_dir(uri: str) -> str | None:
    if uri.startswith("file://"):
        uri = uri[len("file://") :]
    elif "://" in uri:
        return None
    return os.path.join(uri, "_versions")


def _stat(path: str | None) -> os.stat_result | None:
    if path is None:
        return None
    try:
        return os.stat(path)
    except OSError:
        return None


def _snapshot(root: str, name: str, storage_options: dict | None) -> _Snapshot | None:
    """The table at its latest version (None when there is no table)."""
    uri = table_uri(root, name)
    cache = _process_cache()
    key = (uri, tuple(sorted((storage_options or {}).items())))
    table = cache.tables.get(key)
    started = time.time_ns()
    stat = _stat(_local_versions_dir(uri))
    folder = (stat.st_dev, stat.st_ino, stat.st_mtime_ns) if stat is not None else None
    snapshot = None
    if table is not None and table.folder == folder:
        if table.settled:
            return table.snapshot  # `_versions/` unchanged since a settled check: no new version
        dataset = table.snapshot.dataset
        try:
            current = dataset.latest_version == dataset.version
        except (OSError, ValueError, RuntimeError):
            current = False
        snapshot = table.snapshot if current else None
    # else a new version was committed (or the table was deleted and made again): open it afresh
    if snapshot is None:
        try:
            dataset = lance.dataset(uri, storage_options=storage_options, session=cache.session)
        except (FileNotFoundError, ValueError, OSError):
            dataset = open_dataset(uri, storage_options)  # None, or its clear error
            if dataset is None:
                with cache.lock:
                    cache.tables.pop(key, None)
                return None
        snapshot = _Snapshot(dataset)
    settled = folder is not None and started - folder[2] > SETTLED_NS
    with cache.lock:
        cache.tables[key] = _Table(snapshot, folder, settled)
        cache.tables.move_to_end(key)
        while len(cache.tables) > MAX_TABLES:
            cache.tables.popitem(last=False)
    return snapshot


def _open(root: str, name: str, storage_options: dict | None) -> lance.LanceDataset | None:
    """The table at its latest version, through this process's session (None: no table)."""
    snapshot = _snapshot(root, name, storage_options)
    return None if snapshot is None else snapshot.dataset


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


class FrameEntry(NamedTuple):
    """Where one frame is at one version of the frames table (its row id, which Lance's take
    uses, and its row address: fragment id << 32 | offset in the fragment) and its shape."""

    row_id: int
    address: int
    height: int
    width: int
    dtype: str


@dataclass(frozen=True)
class FrameDirectory:
    """One dataset's frames at one version of the frames table: (c, z, t, p) -> FrameEntry, the
    size of each axis (largest index + 1) and the channel names, as the ingest summarises them."""

    entries: dict[tuple[int, int, int, int], FrameEntry]
    sizes: dict[str, int]
    channel_names: list[str]


DIRECTORY_COLUMNS = ["c", "z", "t", "p", "height", "width", "dtype", "channel_name"]


def frame_directory(
    root: str, dataset_id: str, storage_options: dict | None = None
) -> FrameDirectory | None:
    """The dataset's frame directory at the latest version of the frames table (None: there is
    no frames table). Kept for the next reads of that version: do not modify it."""
    snapshot = _snapshot(root, FRAMES, storage_options)
    return None if snapshot is None else _directory(snapshot, dataset_id)


def _directory(snapshot: _Snapshot, dataset_id: str) -> FrameDirectory:
    with snapshot.lock:
        directory = snapshot.directories.get_fresh(dataset_id)
    if directory is not None:
        return directory
    table = snapshot.dataset.to_table(
        columns=DIRECTORY_COLUMNS,
        filter=f"dataset_id = {quote(dataset_id)}",
        with_row_id=True,
        with_row_address=True,
    )
    c, z, t, p, height, width, dtype, channel = (
        table.column(n).to_pylist() for n in DIRECTORY_COLUMNS
    )
    row_ids, addresses = table.column("_rowid").to_pylist(), table.column("_rowaddr").to_pylist()
    entries = dict(
        zip(
            zip(c, z, t, p, strict=True),
            map(FrameEntry._make, zip(row_ids, addresses, height, width, dtype, strict=True)),
            strict=True,
        )
    )
    sizes = {
        axis: max(values, default=-1) + 1 for axis, values in zip("cztp", (c, z, t, p), strict=True)
    }
    names: dict[int, str] = {}
    for index, name in zip(c, channel, strict=True):
        if name or index not in names:
            names[index] = name or ""
    directory = FrameDirectory(entries, sizes, [names.get(i, "") for i in range(sizes["c"])])
    with snapshot.lock:
        snapshot.directories.put(dataset_id, directory, max(1, len(entries)))
    return directory


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
    """Index lists for the selectors, checked against the dataset's frames (its summary)."""
    return _select(root, dataset_id, storage_options, c=c, z=z, t=t, p=p)[0]


def _select(
    root: str, dataset_id: str, storage_options: dict | None, **selectors
) -> tuple[Selection, _Snapshot | None, FrameDirectory | None]:
    """The selection, and the frames table and directory it was resolved against.

    Axis sizes and channel names come from the dataset's frames at the latest version of the
    frames table (the numbers the ingest writes on the dataset row, one commit later), so a read
    never mixes a dataset row and frames of different ingests, and reads no other table. Only a
    dataset without frames is looked up in the datasets table, to say why (not registered, a
    file, not ingested yet).
    """
    unknown = sorted(set(selectors) - {"c", "z", "t", "p"})
    if unknown:
        raise TypeError(f"unknown frame selectors {unknown}: use c, z, t, p")
    snapshot = _snapshot(root, FRAMES, storage_options)
    directory = _directory(snapshot, dataset_id) if snapshot is not None else None
    if directory is not None and directory.entries:
        names, sizes = directory.channel_names, directory.sizes
    else:
        row = get_dataset(root, dataset_id, storage_options)
        if row.get("upload_type") != "frames":
            raise ValueError(
                f"dataset {dataset_id} is of upload type {row.get('upload_type')}: no frames"
            )
        if not row.get("ingested"):
            raise ValueError(
                f"dataset {dataset_id} is registered but its frames are not ingested yet"
            )
        names = list(row.get("channel_names") or [])
        sizes = {
            "c": row["nbr_channels"],
            "z": row["nbr_slices"],
            "t": row["nbr_timepoints"],
            "p": row["nbr_positions"],
        }
    resolved = {}
    for axis in ("c", "z", "t", "p"):
        values = queries.indices(selectors.get(axis), names, axis)
        if values is None:
            values = list(range(sizes[axis]))
        out_of_range = [v for v in values if v >= sizes[axis]]
        if out_of_range:
            raise ValueError(
                f"dataset {dataset_id}: {axis}={out_of_range} out of range (size {sizes[axis]})"
            )
        resolved[axis] = values
    selection = Selection(dataset_id=dataset_id, channel_names=list(names), **resolved)
    return selection, snapshot, directory


def _selected_keys(selection: Selection) -> list[tuple[int, int, int, int]]:
    """(c, z, t, p) of every selected frame, in (p, t, c, z) order: the output's order."""
    return [
        (c, z, t, p)
        for p, t, c, z in itertools.product(selection.p, selection.t, selection.c, selection.z)
    ]


def frames_table(
    root: str,
    dataset_id: str,
    storage_options: dict | None = None,
    *,
    columns: list[str] | None = None,
    **selectors,
) -> pa.Table:
    """Frame rows (no pixels) of the selection, ordered by (p, t, c, z)."""
    selection, snapshot, directory = _select(root, dataset_id, storage_options, **selectors)
    columns = columns or FRAME_INFO_COLUMNS
    if snapshot is None or directory is None:
        raise KeyError(f"dataset {dataset_id}: there is no {table_uri(root, FRAMES)}")
    row_ids = sorted(
        entry.row_id
        for entry in (directory.entries.get(key) for key in _selected_keys(selection))
        if entry is not None
    )
    table = snapshot.dataset._take_rows(row_ids, columns=columns)  # noqa: SLF001
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
    selection, snapshot, directory = _select(root, dataset_id, storage_options, c=c, z=z, t=t, p=p)
    found = directory.entries if directory is not None else {}
    entries = [found.get(key) for key in _selected_keys(selection)]
    missing = entries.count(None)
    if missing or not entries:
        raise KeyError(
            f"dataset {dataset_id}: {missing} of the {selection.count} selected "
            f"frames are not in {table_uri(root, FRAMES)}"
        )
    shape = (entries[0].height, entries[0].width)
    for entry in entries:
        if (entry.height, entry.width) != shape:
            raise ValueError(
                f"dataset {dataset_id}: frames of different shapes ({(entry.height, entry.width)}"
                f" vs {shape}); read them one by one with frames_table + read_frame"
            )
    out = np.empty((len(entries), shape[0] * shape[1]), dtype=np.dtype(entries[0].dtype))
    order = sorted(range(len(entries)), key=lambda i: entries[i].address)
    values = _pixels(snapshot, [entries[i] for i in order], storage_options)
    for i, value in zip(order, values, strict=True):
        stored = np.frombuffer(value, dtype=_stored_dtype(entries[i].dtype))
        if stored.size != out.shape[1]:
            raise ValueError(
                f"dataset {dataset_id}: frame {_selected_keys(selection)[i]} holds "
                f"{len(value)} bytes, not {shape} {entries[i].dtype}"
            )
        out[i] = stored  # the one copy: stored (little-endian) bytes into the output
    out = out.reshape(
        len(selection.p), len(selection.t), len(selection.c), len(selection.z), *shape
    )
    single_position = p is None and len(selection.p) == 1 or isinstance(p, int)
    return out[0] if single_position else out


@functools.lru_cache(maxsize=64)
def _stored_dtype(name: str) -> np.dtype:
    """The dtype of stored pixel bytes (little-endian, as ingest.canonical_bytes writes them)."""
    return np.dtype(name).newbyteorder("<")


def _pixels(
    snapshot: _Snapshot, entries: list[FrameEntry], storage_options: dict | None
) -> list[memoryview | bytes]:
    """The pixel bytes of the frames `entries` (in ascending row address), blobs included.

    Rows are fetched by offset from their fragment's data file (a cached Lance file reader: the
    file is immutable), or with Lance's take where that file cannot be used as it is."""
    values: list[memoryview | bytes | None] = []
    for fragment_id, group in itertools.groupby(entries, key=lambda e: e.address >> 32):
        group = list(group)
        column = None
        reader = _file_reader(snapshot, fragment_id, storage_options)
        if reader is not None:
            offsets = [e.address & 0xFFFFFFFF for e in group]
            try:
                column = reader.take_rows(offsets, batch_readahead=1).to_table().column(0)
            except (OSError, ValueError, RuntimeError):
                column = None
            if column is None or len(column) != len(group) or not _is_binary(column.type):
                with snapshot.lock:
                    snapshot.readers[fragment_id] = None  # not usable as it is: Lance's take
                column = None
        if column is None:
            row_ids = [e.row_id for e in group]
            column = snapshot.dataset._take_rows(row_ids, columns=["pixels"]).column(0)  # noqa: SLF001
        values.extend(_binary_values(column))
    blob_rows = [i for i, value in enumerate(values) if value is None]
    if blob_rows:
        blobs = snapshot.dataset.take_blobs(
            "pixels_blob", ids=[entries[i].row_id for i in blob_rows]
        )
        for i, blob in zip(blob_rows, blobs, strict=True):
            with blob:
                values[i] = blob.readall()
    return values


def _is_binary(type_: pa.DataType) -> bool:
    return pa.types.is_large_binary(type_) or pa.types.is_binary(type_)


def _binary_values(column: pa.ChunkedArray) -> list[memoryview | None]:
    """Zero-copy views of a (large_)binary column's values (None for nulls)."""
    values: list[memoryview | None] = []
    for chunk in column.chunks:
        width = 8 if pa.types.is_large_binary(chunk.type) else 4
        _, offsets, data = chunk.buffers()
        offsets = np.frombuffer(offsets, dtype=np.int64 if width == 8 else np.int32)
        offsets = offsets[chunk.offset : chunk.offset + len(chunk) + 1].tolist()
        view = memoryview(data) if data is not None else memoryview(b"")
        nulls = chunk.is_null().to_pylist() if chunk.null_count else [False] * len(chunk)
        values.extend(
            None if null else view[offsets[i] : offsets[i + 1]] for i, null in enumerate(nulls)
        )
    return values


_readers_lock = threading.Lock()


def _file_reader(
    snapshot: _Snapshot, fragment_id: int, storage_options: dict | None
) -> LanceFileReader | None:
    """A reader of the `pixels` column of the fragment's data file (found by the column's field
    id), or None: for now (the reader is being opened in the background: opening one costs more
    than Lance's take of a few rows, so a first read does not wait for it) or always (the
    fragment's pixels are not in one plain Lance v2 file of the dataset's own folder)."""
    with snapshot.lock:
        known = snapshot.readers.get(fragment_id, False)
    if isinstance(known, Future):  # being opened in the background since the first read
        if not known.done():
            return None
        known = known.result()
        with snapshot.lock:
            snapshot.readers[fragment_id] = known
    if known is not False:
        return known
    found: LanceFileReader | Future | None = None
    try:
        dataset = snapshot.dataset
        field_id = next(f.id() for f in dataset.lance_schema.fields() if f.name() == "pixels")
        fragment = dataset.get_fragment(fragment_id)
        files = [
            f
            for f in (fragment.metadata.data_files() if fragment is not None else [])
            if field_id in f.fields
        ]
        if len(files) == 1 and files[0].base_id is None and files[0].file_major_version >= 2:
            path = f"{dataset.uri.rstrip('/')}/data/{files[0].path}"
            found = _cached_reader(path, storage_options, create=False)
            if found is None:  # open it off this read's path; Lance's take serves this read
                found = _opener().submit(_cached_reader, path, storage_options, create=True)
    except (StopIteration, OSError, ValueError, RuntimeError, AttributeError):
        found = None
    with snapshot.lock:
        snapshot.readers[fragment_id] = found
    return None if isinstance(found, Future) else found


def _opener() -> ThreadPoolExecutor:
    cache = _process_cache()
    with cache.lock:
        if cache.opener is None:
            cache.opener = ThreadPoolExecutor(max_workers=1, thread_name_prefix="frame-readers")
        return cache.opener


def _cached_reader(
    path: str, storage_options: dict | None, *, create: bool
) -> LanceFileReader | None:
    """The process's reader of the data file at `path` (files never change, so a reader stays
    valid across table versions); opened here when `create`."""
    cache = _process_cache()
    key = (path, tuple(sorted((storage_options or {}).items())))
    with _readers_lock:
        reader = cache.readers.get_fresh(key)
    if reader is None and create:
        try:
            reader = LanceFileReader(path, storage_options=storage_options, columns=["pixels"])
        except (OSError, ValueError, RuntimeError):
            return None
        with _readers_lock:
            cache.readers.put(key, reader)
    return reader


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
