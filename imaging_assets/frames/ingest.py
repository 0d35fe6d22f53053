"""Frames as record batches for `frames.lance`, and the summary that goes on the dataset row.

Pixels are stored as the frame's C-order little-endian bytes; `sha256` is the sha256 of exactly
those bytes (the array's bytes, as imagingDB hashes them, not of any encoding), so verify needs
nothing but the row. Frames up to BLOB_THRESHOLD_BYTES go to the zstd `pixels` column, larger ones
to the blob column `pixels_blob`.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import lance
import numpy as np
import pyarrow as pa

from imaging_assets.core.provenance import PACKAGE_VERSION
from imaging_assets.frames.schema import (
    BLOB_THRESHOLD_BYTES,
    FRAME_QUALITY,
    frame_key,
    frames_schema,
    now_utc,
)
from imaging_assets.frames.splitters import Frame, FrameSource

BATCH_BYTES = 16 * 1024 * 1024
BATCH_ROWS = 256


def canonical_bytes(array: np.ndarray) -> tuple[bytes, str]:
    """(C-order little-endian bytes, dtype name) of a frame."""
    dtype = array.dtype
    if dtype.byteorder == ">" or (dtype.byteorder == "=" and np.little_endian is False):
        array = array.astype(dtype.newbyteorder("<"))
    return np.ascontiguousarray(array).tobytes(), array.dtype.name


def frame_sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def decode_pixels(data: bytes, dtype: str, height: int, width: int) -> np.ndarray:
    return np.frombuffer(data, dtype=np.dtype(dtype).newbyteorder("<")).reshape(height, width)


@dataclass
class IngestSummary:
    """Accumulated while the frames stream: shape per axis, dtype, channel names, counts."""

    dataset_id: str
    channel_names: dict[int, str | None] = field(default_factory=dict)
    indices: dict[str, set[int]] = field(
        default_factory=lambda: {"c": set(), "z": set(), "t": set(), "p": set()}
    )
    shapes: set[tuple[int, int]] = field(default_factory=set)
    dtypes: set[str] = field(default_factory=set)
    frame_count: int = 0
    bytes: int = 0
    blob_frames: int = 0
    seconds: float = 0.0

    def add(self, frame: Frame, nbytes: int, dtype: str) -> None:
        self.frame_count += 1
        self.bytes += nbytes
        for name in ("c", "z", "t", "p"):
            self.indices[name].add(getattr(frame, name))
        self.shapes.add(tuple(frame.array.shape))
        self.dtypes.add(dtype)
        if frame.channel_name is not None or frame.c not in self.channel_names:
            self.channel_names[frame.c] = frame.channel_name

    def sizes(self) -> dict[str, int]:
        return {k: (max(v) + 1 if v else 0) for k, v in self.indices.items()}

    def as_dict(self, source: FrameSource | None = None) -> dict:
        sizes = self.sizes()
        (height, width) = next(iter(self.shapes)) if len(self.shapes) == 1 else (None, None)
        return {
            "format": source.format if source else None,
            "axes": source.axes if source else None,
            "shape": {"T": sizes["t"], "C": sizes["c"], "Z": sizes["z"], "P": sizes["p"]},
            "height": height,
            "width": width,
            "shapes": sorted(list(s) for s in self.shapes),
            "dtype": next(iter(self.dtypes)) if len(self.dtypes) == 1 else sorted(self.dtypes),
            "channel_names": self.channel_name_list(),
            "frame_count": self.frame_count,
            "expected_frame_count": sizes["t"] * sizes["c"] * sizes["z"] * sizes["p"],
            "bytes": self.bytes,
            "blob_frames": self.blob_frames,
        }

    def channel_name_list(self) -> list[str | None]:
        count = self.sizes()["c"]
        return [self.channel_names.get(c) for c in range(count)]

    def dataset_columns(self, source: FrameSource | None = None) -> dict:
        """The summary columns of the dataset row."""
        s = self.as_dict(source)
        return {
            "summary": json.dumps(s),
            "nbr_channels": s["shape"]["C"],
            "nbr_slices": s["shape"]["Z"],
            "nbr_timepoints": s["shape"]["T"],
            "nbr_positions": s["shape"]["P"],
            "im_height": s["height"],
            "im_width": s["width"],
            "dtype": s["dtype"] if isinstance(s["dtype"], str) else ",".join(s["dtype"]),
            "channel_names": [n or "" for n in s["channel_names"]],
            "frame_count": s["frame_count"],
            "bytes": s["bytes"],
        }


def frame_batches(
    dataset_id: str,
    source: FrameSource,
    run_id: str,
    summary: IngestSummary,
    *,
    source_uri: str | None = None,
    blob_threshold: int = BLOB_THRESHOLD_BYTES,
    batch_rows: int = BATCH_ROWS,
    batch_bytes: int = BATCH_BYTES,
    measure_quality: bool = True,
) -> Iterator[pa.RecordBatch]:
    """Record batches of `frames_schema()`, streamed: at most one batch of frames in memory.
    Each frame's CellProfiler image-quality features are measured from the decoded array here
    (no second read); `measure_quality=False` leaves them null."""
    schema = frames_schema()
    unmeasured = dict.fromkeys([*FRAME_QUALITY.names, "qc_metric_set", "qc_scale"])
    rows: list[dict] = []
    held = 0
    started = time.perf_counter()
    written_at = now_utc()
    for frame in source.frames():
        data, dtype = canonical_bytes(frame.array)
        summary.add(frame, len(data), dtype)
        big = len(data) > blob_threshold
        summary.blob_frames += int(big)
        rows.append(
            {
                "frame_key": frame_key(dataset_id, frame.c, frame.z, frame.t, frame.p),
                "dataset_id": dataset_id,
                "c": frame.c,
                "z": frame.z,
                "t": frame.t,
                "p": frame.p,
                "channel_name": frame.channel_name,
                "height": int(frame.array.shape[0]),
                "width": int(frame.array.shape[1]),
                "dtype": dtype,
                "nbytes": len(data),
                "sha256": frame_sha256(data),
                "meta": json.dumps(frame.meta, default=str),
                "source_uri": source_uri or frame.source,
                "read_uri": frame.source,
                "pixels": None if big else data,
                "pixels_blob": data if big else None,
                "dagster_run_id": run_id,
                "package_version": PACKAGE_VERSION,
                "written_at": written_at,
                **(FRAME_QUALITY.measure(frame.array) if measure_quality else unmeasured),
            }
        )
        held += len(data)
        if len(rows) >= batch_rows or held >= batch_bytes:
            yield _batch(rows, schema)
            rows, held = [], 0
    if rows:
        yield _batch(rows, schema)
    summary.seconds += time.perf_counter() - started


def _batch(rows: list[dict], schema: pa.Schema) -> pa.RecordBatch:
    arrays = []
    for f in schema:
        values = [r[f.name] for r in rows]
        if f.name == "pixels_blob":
            arrays.append(lance.blob_array(values))
        else:
            arrays.append(pa.array(values, type=f.type))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)
