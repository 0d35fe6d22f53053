"""Fetch, decode, process and describe a plate's sites as a bounded stream of record batches.

Memory stays bounded by a window of sites in flight (2 x workers), never by the plate: results are
consumed in site_key order as they complete, packed into small record batches and handed to the
Lance writer. Decoding is bounded too: each TIFF's declared shape and dtype are checked against the
plate's expected ones (configured, or fixed before fanning out by the majority of the first sites'
headers, in task order, so thread timing never changes the outcome) before any pixel is decoded.

Each unusable image (missing, empty, corrupt, wrong size or dtype) is recorded as a failure and its
site dropped; every site is still fetched and checked, so failures are complete and counted. A
store that stays unreachable after retries aborts the stream instead, since that says nothing about
the images. When more sites failed than the tolerance allows, rows stop flowing and the stream
raises TooManyFailures at its end, so the writer commits nothing.

Provenance names each raw object by the URI the load data gives (`<channel>_raw_uri`, the same
whatever the source root) and by where it was actually read (`<channel>_read_uri`). Messages name
URIs and kinds, never content of the objects.

Image quality: each raw image, once decoded and before the recipe, is measured with the
CellProfiler MeasureImageQuality features its channel's `MetricPlan` names (jump/quality.py), in
the same worker thread; the values are columns of the site's row (CellProfiler's names, e.g.
ImageQuality_PowerLogLogSlope_OrigDNA), with the metric set's name and version and the intensity
scale. Nothing extra is held: the values travel in the row like the digests.
"""

from __future__ import annotations

import hashlib
import io
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa

from imaging_assets import __version__
from imaging_assets.core.errors import MissingObjectError
from imaging_assets.core.objects import FetchedObject, ObjectReader
from imaging_assets.core.stores import StoreUnavailableError
from imaging_assets.jump.images.tasks import ChannelSource, SiteTask
from imaging_assets.jump.quality import METRIC_SET_NAME, MetricPlan
from imaging_assets.jump.schemas import channel_prefix, failed_images_schema, site_images_schema
from imaging_assets.processing import (
    DEFAULT_MAX_PIXELS,
    ImageDecodeError,
    Recipe,
    apply_recipe,
    check_header,
    codec_name,
    crop_offset,
    decode_tiff,
    default_codec,
    encode_pixels,
    read_tiff_header,
)

REFERENCE_SITES = 3  # sites whose TIFF headers fix a plate's expected shape and dtype
DEFAULT_PLAN = MetricPlan()


class TooManyFailures(RuntimeError):
    """More sites failed than the plate's tolerance allows; nothing is written."""


class _ImageFailure(Exception):
    """One unusable image. The message names the canonical URI and the kind, never content."""

    def __init__(
        self,
        kind: str,
        source: ChannelSource,
        description: str,
        read_uri: str | None = None,
        *,
        message: str | None = None,
    ) -> None:
        super().__init__(message or f"{source.raw_uri}: {kind}: {description}")
        self.kind, self.channel = kind, source.channel
        self.uri, self.read_uri = source.raw_uri, read_uri or source.uri


@dataclass
class _ChannelResult:
    source: ChannelSource
    fetched: FetchedObject
    raw_shape: tuple[int, int]
    array: np.ndarray | None  # None when only checked (the plate is already rejected)
    low: float
    high: float
    metrics: dict[str, float] = field(default_factory=dict)  # quality column -> value
    scale: float | None = None  # the divisor the metrics are on (None: none computed)


@dataclass
class _Outcome:
    row: dict | None  # None for a failed site, or a good one only checked
    failures: list[dict]


@dataclass
class PlateResult:
    """Counters and failures of one plate's stream; `batches()` is the stream itself.

    expected_shape / expected_dtype: what every raw image must declare; when None, fixed from the
    first REFERENCE_SITES sites' TIFF headers (the majority, ties to the first in task order).
    Floats are refused unless expected_dtype is a float dtype. max_pixels bounds any one image.
    quality: which CellProfiler quality features are measured on which channel's raw pixels
    (None: none; the columns stay null).
    """

    tasks: Sequence[SiteTask]
    read: ObjectReader
    recipe: Recipe
    channels: list[str]
    workers: int
    run_id: str
    expected_shape: tuple[int, int] | None = None
    expected_dtype: str | None = None
    max_pixels: int | None = DEFAULT_MAX_PIXELS
    batch_rows: int = 8
    max_failed_fraction: float = 0.0
    progress: Callable[[int, int], None] | None = None
    reference_sites: int = REFERENCE_SITES
    codec: str | None = None  # imaging_assets.processing.codecs; None: the recipe's default
    quality: MetricPlan | None = None
    sites_ok: int = 0
    sites_failed: int = 0
    images: int = 0
    raw_bytes: int = 0
    processed_bytes: int = 0
    seconds: float = 0.0
    max_in_flight: int = 0
    quality_seconds: float = 0.0  # CPU seconds (worker threads) spent measuring image quality
    shape: tuple[int, ...] | None = None  # the plate's expected shape, once fixed
    dtype: np.dtype | None = None  # the plate's expected dtype, once fixed
    reference: dict[str, str] = field(default_factory=dict)  # "config", "data" or "none"
    failures: list[dict] = field(default_factory=list)
    _rejecting: bool = False
    _prefetched: dict[tuple[str, int], FetchedObject | _ImageFailure] = field(default_factory=dict)
    _prefetched_lock: threading.Lock = field(default_factory=threading.Lock)
    _illum: dict[str, np.ndarray] = field(default_factory=dict)
    _illum_lock: threading.Lock = field(default_factory=threading.Lock)
    _quality_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def window(self) -> int:
        return max(2 * self.workers, 1)

    @property
    def rejected(self) -> bool:
        """True once more sites failed than the tolerance allows."""
        return self._rejecting

    def failures_table(self) -> pa.Table:
        return pa.Table.from_pylist(self.failures, schema=failed_images_schema())

    def failures_by_kind(self) -> dict[str, int]:
        return dict(sorted(Counter(f["error_kind"] for f in self.failures).items()))

    def failure_summary(self) -> str:
        kinds = ", ".join(f"{k}: {n}" for k, n in self.failures_by_kind().items())
        first = ", ".join(f"{f['uri']} ({f['error_kind']})" for f in self.failures[:3])
        return (
            f"{self.sites_failed} of {len(self.tasks)} sites failed (tolerated: "
            f"{int(self._allowed_failures())}); {len(self.failures)} failed images by kind: "
            f"{kinds}; first: {first}"
        )

    def expected(self) -> dict:
        """The plate's expected raw shape and dtype and where each came from, for metadata."""
        return {
            "shape": list(self.shape) if self.shape else None,
            "dtype": str(self.dtype) if self.dtype is not None else None,
            "from": dict(self.reference),
        }

    # -- per site, in worker threads ---------------------------------------------------------

    def _fetch(self, source: ChannelSource) -> FetchedObject:
        try:
            return self.read(source.uri)
        except MissingObjectError as error:
            raise _ImageFailure("missing", source, "object not found") from error
        except (PermissionError, IsADirectoryError, NotADirectoryError, ValueError) as error:
            raise _ImageFailure(
                "unreadable", source, f"cannot be read ({type(error).__name__})"
            ) from error

    def _fetched(self, task: SiteTask, index: int) -> FetchedObject:
        with self._prefetched_lock:
            prefetched = self._prefetched.pop((task.site_key, index), None)
        if isinstance(prefetched, _ImageFailure):
            raise prefetched
        return prefetched if prefetched is not None else self._fetch(task.channels[index])

    def _illumination(self, source: ChannelSource, read_uri: str) -> np.ndarray:
        uri = source.illum_uri
        with self._illum_lock:
            if uri not in self._illum:
                try:
                    data = self.read(uri).data
                except MissingObjectError as error:
                    raise _ImageFailure(
                        "missing", source, f"illumination function {uri} not found", read_uri
                    ) from error
                try:
                    self._illum[uri] = np.load(io.BytesIO(data), allow_pickle=False)
                except Exception as error:  # np.load raises many types for bad bytes
                    raise _ImageFailure(
                        "corrupt",
                        source,
                        f"illumination function {uri} is not a readable .npy "
                        f"({type(error).__name__})",
                        read_uri,
                    ) from error
            return self._illum[uri]

    def _channel(self, task: SiteTask, index: int, process: bool) -> _ChannelResult:
        source = task.channels[index]
        fetched = self._fetched(task, index)
        try:
            image = decode_tiff(
                fetched.data,
                page=source.frame,
                source=source.raw_uri,
                expected_shape=self.shape,
                expected_dtype=self.dtype,
                max_pixels=self.max_pixels,
            )
        except ImageDecodeError as error:
            # decode_tiff was given the canonical URI as its source: the message names it
            raise _ImageFailure(error.kind, source, "", fetched.uri, message=str(error)) from error
        illum = None
        if self.recipe.needs_illum:
            if not source.illum_uri:
                raise _ImageFailure("missing", source, "no illumination function", fetched.uri)
            illum = self._illumination(source, fetched.uri)
        if not process:
            return _ChannelResult(source, fetched, image.shape, None, 0.0, 0.0)
        metrics, scale = {}, None
        if self.quality is not None:
            started = time.thread_time()
            metrics, scale = self.quality.measure(source.channel, image)
            spent = time.thread_time() - started
            with self._quality_lock:
                self.quality_seconds += spent
        processed = apply_recipe(self.recipe, image, illum)
        return _ChannelResult(
            source,
            fetched,
            image.shape,
            processed.array,
            processed.low,
            processed.high,
            metrics,
            scale,
        )

    def _site(self, task: SiteTask) -> _Outcome:
        process = not self._rejecting  # once rejected, only fetch and check
        results, failures = [], []
        for index in range(len(task.channels)):
            try:
                results.append(self._channel(task, index, process))
            except _ImageFailure as failure:
                failures.append(self._failure(task, failure))
        if failures:
            return _Outcome(None, failures)
        shapes = {r.raw_shape for r in results}
        if len(shapes) > 1:  # only possible when no expected shape is known
            first = results[0]
            failure = _ImageFailure(
                "wrong_size",
                first.source,
                f"channels differ in shape: {sorted(shapes)}",
                first.fetched.uri,
            )
            return _Outcome(None, [self._failure(task, failure)])
        return _Outcome(self._row(task, results) if process else None, [])

    def _failure(self, task: SiteTask, failure: _ImageFailure) -> dict:
        return {
            "failure_key": f"{task.site_key}__{failure.channel}",
            "uri": failure.uri,
            "read_uri": failure.read_uri,
            "site_key": task.site_key,
            "source": task.source,
            "plate": task.plate,
            "channel": failure.channel,
            "error_kind": failure.kind,
            "message": str(failure),
            "dagster_run_id": self.run_id,
            "failed_at": datetime.now(UTC),
            "package_version": __version__,
        }

    def _row(self, task: SiteTask, results: list[_ChannelResult]) -> dict:
        row: dict = {
            "site_key": task.site_key,
            "source": task.source,
            "batch": task.batch,
            "plate": task.plate,
            "well": task.well,
            "site": task.site,
            "jcp2022": task.jcp2022,
            "modality": task.modality,
            "control_role": task.control_role,
            "plate_type": task.plate_type,
        }
        crop = int(self.recipe.params.get("crop", 0))
        for channel, result in zip(self.channels, results, strict=True):
            c = channel_prefix(channel)
            data = result.fetched.data
            array = np.ascontiguousarray(result.array)
            encoded = encode_pixels(array, self.codec or default_codec(self.recipe.name))
            row |= {
                f"{c}_pixels": encoded.data,
                f"{c}_codec": encoded.codec,
                f"{c}_pixels_sha256": hashlib.sha256(encoded.data).hexdigest(),
                f"{c}_shape": list(array.shape),
                f"{c}_dtype": str(array.dtype),
                f"{c}_raw_uri": result.source.raw_uri,
                f"{c}_read_uri": result.fetched.uri,
                f"{c}_raw_size": len(data),
                f"{c}_raw_md5": hashlib.md5(data).hexdigest(),
                f"{c}_raw_sha256": hashlib.sha256(data).hexdigest(),
                f"{c}_raw_etag": result.fetched.etag,
                f"{c}_raw_shape": list(result.raw_shape),
                f"{c}_crop_offset": list(crop_offset(result.raw_shape, crop)),
                f"{c}_low": result.low,
                f"{c}_high": result.high,
                f"{c}_illum_uri": result.source.illum_uri,
            }
            row |= result.metrics
        scales = {r.scale for r in results if r.scale is not None}
        row |= {
            "qc_metric_set": METRIC_SET_NAME if scales else None,
            "qc_scale": scales.pop() if len(scales) == 1 else None,
            "recipe_name": self.recipe.name,
            "recipe_version": self.recipe.version,
            "recipe_params": self.recipe.params_json(),
            "package_version": __version__,
            "dagster_run_id": self.run_id,
            "written_at": datetime.now(UTC),
        }
        return row

    # -- the plate's expected shape and dtype ---------------------------------------------------

    def _fix_expected(self, pool: ThreadPoolExecutor) -> None:
        """Take the configured shape/dtype, or fix the missing ones from the first sites' headers.

        The first sites' objects are fetched in parallel and kept for their workers (no second
        read); votes are counted in task order, so the outcome never depends on thread timing.
        """
        self.shape = tuple(self.expected_shape) if self.expected_shape else None
        self.dtype = np.dtype(self.expected_dtype) if self.expected_dtype else None
        self.reference = {
            "shape": "config" if self.shape else "none",
            "dtype": "config" if self.dtype is not None else "none",
        }
        if self.shape is not None and self.dtype is not None:
            return
        jobs: list[tuple[tuple[str, int], ChannelSource, Future]] = [
            ((task.site_key, index), source, pool.submit(self._fetch, source))
            for task in self.tasks[: self.reference_sites]
            for index, source in enumerate(task.channels)
        ]
        shapes: Counter = Counter()
        dtypes: Counter = Counter()
        for key, source, future in jobs:
            try:
                fetched = future.result()
            except _ImageFailure as failure:
                self._prefetched[key] = failure
                continue
            self._prefetched[key] = fetched
            try:
                header = read_tiff_header(fetched.data, page=source.frame, source=source.raw_uri)
                check_header(
                    header,
                    source.raw_uri,
                    expected_shape=self.shape,
                    expected_dtype=self.dtype,
                    max_pixels=self.max_pixels,
                )
            except ImageDecodeError:
                continue  # recorded as a failure when its site is processed
            shapes[header.shape] += 1
            dtypes[header.dtype] += 1
        if self.shape is None and shapes:
            self.shape = shapes.most_common(1)[0][0]  # ties: the first seen in task order
            self.reference["shape"] = "data"
        if self.dtype is None and dtypes:
            self.dtype = dtypes.most_common(1)[0][0]
            self.reference["dtype"] = "data"

    # -- the stream ----------------------------------------------------------------------------

    def _allowed_failures(self) -> float:
        return self.max_failed_fraction * len(self.tasks)

    def _account(self, outcome: _Outcome) -> dict | None:
        if outcome.failures:
            self.sites_failed += 1
            self.failures.extend(outcome.failures)
            if self.sites_failed > self._allowed_failures():
                self._rejecting = True
            return None
        self.sites_ok += 1
        row = outcome.row
        if row is None or self._rejecting:
            return None
        self.images += len(self.channels)
        for channel in self.channels:
            c = channel_prefix(channel)
            self.raw_bytes += row[f"{c}_raw_size"]
            self.processed_bytes += len(row[f"{c}_pixels"])
        return row

    def _outcomes(self) -> Iterator[_Outcome]:
        """Each site's outcome in task order, with at most `window` sites in flight."""
        pending: deque[Future] = deque()
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="site") as pool:
            try:
                self._fix_expected(pool)
                for task in self.tasks:
                    pending.append(pool.submit(self._site, task))
                    self.max_in_flight = max(self.max_in_flight, len(pending))
                    if len(pending) >= self.window:
                        yield pending.popleft().result()
                while pending:
                    yield pending.popleft().result()
            except BaseException:
                for future in pending:
                    future.cancel()
                raise

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Record batches of up to batch_rows sites, in site_key order.

        Every site is fetched and checked. Once more sites have failed than tolerated, no further
        rows are yielded (the rest are only checked, not processed) and TooManyFailures is raised
        at the end with the complete counts.
        """
        schema = site_images_schema(self.channels)
        started = time.perf_counter()
        rows: list[dict] = []
        try:
            for done, outcome in enumerate(self._outcomes(), start=1):
                row = self._account(outcome)
                if self.progress:
                    self.progress(done, len(self.tasks))
                if self._rejecting:
                    rows = []
                    continue
                if row is not None:
                    rows.append(row)
                if len(rows) >= self.batch_rows:
                    yield pa.RecordBatch.from_pylist(rows, schema=schema)
                    rows = []
            if self._rejecting:
                raise TooManyFailures(self.failure_summary())
            if rows:
                yield pa.RecordBatch.from_pylist(rows, schema=schema)
        finally:
            self.seconds = time.perf_counter() - started


def process_sites(
    tasks: Sequence[SiteTask],
    read: ObjectReader,
    *,
    recipe: Recipe,
    channels: list[str],
    workers: int,
    run_id: str,
    expected_shape: tuple[int, int] | None = None,
    expected_dtype: str | None = None,
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    batch_rows: int = 8,
    max_failed_fraction: float = 0.0,
    progress: Callable[[int, int], None] | None = None,
    codec: str | None = None,
    quality: MetricPlan | None = DEFAULT_PLAN,
) -> PlateResult:
    """The plate's stream (call `.batches()`), with counters filled in as it is consumed.

    Store outages (StoreUnavailableError after the store's own retries) propagate unchanged.
    codec names how each channel's pixels are stored ("pzstd", "raw" or "name/version"); None
    takes the recipe's default (imaging_assets.processing.codecs.default_codec). quality: the
    CellProfiler quality features to measure per channel (by default jump.quality's default
    plan; None: none, the columns stay null).
    """
    return PlateResult(
        tasks=list(tasks),
        read=read,
        recipe=recipe,
        channels=list(channels),
        workers=workers,
        run_id=run_id,
        expected_shape=tuple(expected_shape) if expected_shape else None,
        expected_dtype=expected_dtype,
        max_pixels=max_pixels,
        batch_rows=batch_rows,
        max_failed_fraction=max_failed_fraction,
        progress=progress,
        codec=codec_name(codec) if codec else None,
        quality=quality,
    )


__all__ = [
    "REFERENCE_SITES",
    "PlateResult",
    "StoreUnavailableError",
    "TooManyFailures",
    "process_sites",
]
