"""Stream a specimen's slices into record batches: one slice per batch, pixels in a blob v2 column.

Memory stays bounded by a few slices (the raw object, its decoded array and the batch). Each slice
is checked: missing (absent object, or a gap in the z numbering), empty, truncated (fewer bytes
than listed, or a TIFF whose strips run past the end), undecodable, or of another size or dtype
than the specimen's first slice. Failures are recorded; unless tolerated they fail the specimen
at the end of the stream (so every failure is named at once) and nothing is committed.

Pixels are the decoded slice as C-order little-endian bytes (row y starts at y * width * itemsize),
so a window is a set of byte ranges. With `reference`, an uncompressed contiguous little-endian
TIFF page on local disk is stored as a reference to the original bytes (no copy).

Each decoded slice is also measured once (stacks/quality.py: CellProfiler's image-quality
features as columns ImageQuality_<Feature>_Slice), on the worker pool that hashes the raw bytes,
so no slice is read or decoded twice.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import lance
import numpy as np
import pyarrow as pa
import tifffile

from imaging_assets.core.errors import MissingObjectError
from imaging_assets.core.lance_tables import addable
from imaging_assets.core.provenance import PACKAGE_VERSION
from imaging_assets.core.stores import LocalStore, ObjectStore
from imaging_assets.stacks import quality

SLICES_SCHEMA = pa.schema(
    [
        pa.field("specimen", pa.string()),
        pa.field("split", pa.string()),
        pa.field("z", pa.int32()),
        pa.field("slice_key", pa.string()),
        pa.field("height", pa.int32()),
        pa.field("width", pa.int32()),
        pa.field("dtype", pa.string()),
        pa.field("tiff_compression", pa.string()),
        pa.field("tiff_data_offset", pa.int64()),
        pa.field("pixels_mode", pa.string()),
        pa.field("raw_uri", pa.string()),
        addable(pa.field("read_uri", pa.string())),  # where read (added later: null before)
        pa.field("raw_size", pa.int64()),
        pa.field("raw_etag", pa.string()),
        pa.field("raw_md5", pa.string()),
        pa.field("raw_sha256", pa.string()),
        # sha256 of the stored pixel bytes (added later: null before): what a verify re-hashes
        addable(pa.field("pixels_sha256", pa.string())),
        pa.field("package_version", pa.string()),
        pa.field("dagster_run_id", pa.string()),
        pa.field("written_at", pa.timestamp("us", tz="UTC")),
        lance.blob_field("pixels"),
        *quality.FIELDS,  # ImageQuality_<Feature>_Slice..., qc_metric_set, qc_scale (addable)
    ]
)
FAILURE_KINDS = ("missing", "empty", "truncated", "undecodable", "wrong_size", "duplicate_z")


@dataclass(frozen=True)
class SliceFailure:
    specimen: str
    z: int
    key: str | None
    kind: str
    detail: str

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class SliceFailuresError(RuntimeError):
    """Slices of a specimen failed and failures are not tolerated; nothing was committed."""

    def __init__(self, specimen: str, failures: list[SliceFailure]) -> None:
        self.failures = failures
        shown = "; ".join(f"z={f.z} {f.kind}: {f.detail}" for f in failures[:10])
        more = f" (+{len(failures) - 10} more)" if len(failures) > 10 else ""
        super().__init__(
            f"specimen {specimen}: {len(failures)} slice(s) failed, nothing was committed: "
            f"{shown}{more}. Fix the source, or re-run with config tolerate_failures: true to "
            "write the good slices and record the failures."
        )


def _sha256(data) -> str:
    return hashlib.sha256(data).hexdigest()


def slice_key(specimen: str, z: int) -> str:
    return f"{specimen}__{z:05d}"


def _compression_name(page) -> str:
    value = page.compression
    return getattr(value, "name", str(value)).lower()


def _local_file_uri(store: ObjectStore, key: str) -> str | None:
    if isinstance(store, LocalStore):
        return Path(store.path(key)).resolve().as_uri()
    return None


@dataclass
class _Started:
    """A slice read and decoded, its hashes and metrics under way on the worker pool."""

    z: int
    values: dict  # the row's columns known already
    pixels: object  # the stored bytes, or a lance.Blob reference
    futures: dict[str, Future]  # column -> its value to come (the checksums)
    measured: Future | None  # (quality columns, CPU seconds), when measured


@dataclass
class SliceStream:
    """The batches of one specimen; `failures` and counters fill in as it is consumed."""

    store: ObjectStore
    specimen: str
    split: str
    slice_files: list[dict]  # manifest rows: key, z, size, etag
    run_id: str = ""
    reference: bool = False
    expected_shape: tuple[int, int] | None = None
    failures: list[SliceFailure] = field(default_factory=list)
    tolerate_failures: bool = False
    slices_written: int = 0
    bytes_read: int = 0
    decode_seconds: float = 0.0
    shape: tuple[int, int] | None = None
    dtype: str | None = None
    compressions: set[str] = field(default_factory=set)
    measure_quality: bool = True
    focus: dict[int, float] = field(default_factory=dict)  # z -> FocusScore of written slices
    quality_cpu_seconds: float = 0.0  # CPU spent measuring, on the worker threads

    @property
    def best_focus_z(self) -> int | None:
        """The written slice with the highest FocusScore (stacks/quality.py)."""
        return quality.best_focus(list(self.focus), self.focus.values())

    def _fail(self, z: int, key: str | None, kind: str, detail: str) -> None:
        self.failures.append(SliceFailure(self.specimen, z, key, kind, detail))

    def _plan(self) -> list[dict]:
        by_z: dict[int, dict] = {}
        for row in sorted(self.slice_files, key=lambda r: (r["z"], r["key"])):
            if row["z"] in by_z:
                self._fail(row["z"], row["key"], "duplicate_z", f"also {by_z[row['z']]['key']}")
                continue
            by_z[row["z"]] = row
        if by_z:
            for z in range(min(by_z), max(by_z) + 1):
                if z not in by_z:
                    self._fail(z, None, "missing", "no slice file with this z in the folder")
        return [by_z[z] for z in sorted(by_z)]

    def _decode(self, row: dict, data: bytes):
        """(array, page facts) or None after recording a failure."""
        z, key = row["z"], row["key"]
        buffer = io.BytesIO(data)  # closed below: tifffile's reference cycles keep it alive
        try:
            with tifffile.TiffFile(buffer) as tif:
                page = tif.pages.first
                ends = [o + n for o, n in zip(page.dataoffsets, page.databytecounts, strict=False)]
                if ends and max(ends) > len(data):
                    self._fail(
                        z,
                        key,
                        "truncated",
                        f"pixel data ends at byte {max(ends)}, file has {len(data)}",
                    )
                    return None
                array = page.asarray()
                facts = {
                    "compression": _compression_name(page),
                    "offset": page.dataoffsets[0] if page.is_contiguous else None,
                    "contiguous": bool(page.is_contiguous) and page.compression == 1,
                    "byteorder": tif.byteorder,
                }
        except Exception as error:  # noqa: BLE001 - any decoder error is this slice's failure
            self._fail(z, key, "undecodable", f"{type(error).__name__}: {error}")
            return None
        finally:
            buffer.close()  # until the next full GC, the cycle would hold a whole raw slice
        if array.ndim != 2:
            self._fail(z, key, "wrong_size", f"shape {array.shape}, expected a 2-D slice")
            return None
        expected = self.expected_shape or self.shape
        if expected is not None and (
            array.shape != tuple(expected) or str(array.dtype) != (self.dtype or str(array.dtype))
        ):
            self._fail(
                z,
                key,
                "wrong_size",
                f"{array.shape} {array.dtype}, the specimen's slices are {tuple(expected)} "
                f"{self.dtype or array.dtype}",
            )
            return None
        self.shape, self.dtype = tuple(array.shape), str(array.dtype)
        return array, facts

    def batches(self) -> Iterator[pa.RecordBatch]:
        # md5 and sha256 run on two threads while the slice decodes (hashlib releases the GIL),
        # then the quality metrics of the decoded slice on a third (NumPy and the FFT release
        # it; one thread of its own, so that only one malloc arena holds its large temporaries).
        # A slice's batch is finished once the next slice is read and decoded, so its hashing
        # and measuring overlap that read: one more slice in memory, not one more pass.
        with (
            ThreadPoolExecutor(max_workers=2, thread_name_prefix="slice-hash") as hashing,
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="slice-quality") as measuring,
        ):
            pending: _Started | None = None
            for row in self._plan():
                started = self._start(row, hashing, measuring)
                if started is None:
                    continue
                if pending is not None:
                    yield self._batch(pending)
                pending = started
            if pending is not None:
                yield self._batch(pending)
        if self.failures and not self.tolerate_failures:
            raise SliceFailuresError(self.specimen, self.failures)

    def _start(
        self, row: dict, hashing: ThreadPoolExecutor, measuring: ThreadPoolExecutor
    ) -> _Started | None:
        """Read, check and decode one slice and start its hashes and metrics (None: the slice
        failed, recorded)."""
        z, key = row["z"], row["key"]
        try:
            fetched = self.store.read(key)
        except MissingObjectError as error:
            self._fail(z, key, "missing", str(error))
            return None
        data = fetched.data
        self.bytes_read += len(data)
        if not data:
            self._fail(z, key, "empty", "the object has 0 bytes")
            return None
        listed = row.get("size")
        if listed is not None and len(data) != listed:
            self._fail(z, key, "truncated", f"read {len(data)} bytes, the listing said {listed}")
            return None
        md5 = hashing.submit(lambda: hashlib.md5(data).hexdigest())
        sha256 = hashing.submit(lambda: hashlib.sha256(data).hexdigest())
        started = time.perf_counter()
        decoded = self._decode(row, data)
        self.decode_seconds += time.perf_counter() - started
        if decoded is None:
            return None
        array, facts = decoded
        measured = measuring.submit(quality.timed_measure, array) if self.measure_quality else None
        self.compressions.add(facts["compression"])
        local_uri = _local_file_uri(self.store, key)
        use_reference = (
            self.reference
            and local_uri is not None
            and facts["contiguous"]
            and facts["offset"] is not None
            and (facts["byteorder"] == "<" or array.dtype.itemsize == 1)
        )
        if use_reference:
            pixels = lance.Blob.from_uri(local_uri, int(facts["offset"]), array.nbytes)
        else:
            pixels = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes()
        # the stored bytes' digest: the referenced range holds exactly the little-endian pixels
        stored_bytes = memoryview(np.ascontiguousarray(array)) if use_reference else pixels
        stored = hashing.submit(_sha256, stored_bytes)
        height, width = array.shape
        del array
        values = {
            "specimen": self.specimen,
            "split": self.split,
            "z": z,
            "slice_key": slice_key(self.specimen, z),
            "height": height,
            "width": width,
            "dtype": self.dtype,
            "tiff_compression": facts["compression"],
            "tiff_data_offset": facts["offset"],
            "pixels_mode": "reference" if use_reference else "ingested",
            "raw_uri": self.store.uri(key),
            "read_uri": fetched.uri,
            "raw_size": len(data),
            "raw_etag": fetched.etag or row.get("etag"),
            "package_version": PACKAGE_VERSION,
            "dagster_run_id": self.run_id,
        }
        futures = {"raw_md5": md5, "raw_sha256": sha256, "pixels_sha256": stored}
        return _Started(z, values, pixels, futures, measured)

    def _batch(self, started: _Started) -> pa.RecordBatch:
        """The slice's batch, once its hashes and metrics are done."""
        values = {
            **started.values,
            **{name: future.result() for name, future in started.futures.items()},
            "written_at": dt.datetime.now(dt.UTC),
        }
        if started.measured is not None:
            metrics, cpu_seconds = started.measured.result()
            self.quality_cpu_seconds += cpu_seconds
            values |= metrics
            if metrics[quality.FOCUS_COLUMN] is not None:
                self.focus[started.z] = metrics[quality.FOCUS_COLUMN]
        pixels = started.pixels
        self.slices_written += 1
        arrays = [
            lance.blob_array([pixels])
            if f.name == "pixels"
            else pa.array([values.get(f.name)], type=f.type)
            for f in SLICES_SCHEMA
        ]
        return pa.RecordBatch.from_arrays(arrays, schema=SLICES_SCHEMA)
