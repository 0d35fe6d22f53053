"""Fetch, decode, process and describe a plate's sites as a bounded stream of record batches.

Memory stays bounded by a window of sites in flight (2 x workers), never by the plate: results are
consumed in site_key order as they complete, packed into small record batches and handed to the
Lance writer. Each unusable image (missing, empty, corrupt, wrong size) drops its site and is
recorded as a failure; a store that stays unreachable after retries aborts the stream instead,
since that says nothing about the images. Exceeding the failure tolerance raises TooManyFailures
from inside the stream, so the writer commits nothing.
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
from imaging_assets.errors import MissingObjectError
from imaging_assets.images.tasks import SiteTask
from imaging_assets.objects import FetchedObject, ObjectReader
from imaging_assets.processing import (
    ImageDecodeError,
    Recipe,
    apply_recipe,
    crop_offset,
    decode_tiff,
)
from imaging_assets.resources.stores import StoreUnavailableError
from imaging_assets.schemas import channel_prefix, failed_images_schema, site_images_schema


class TooManyFailures(RuntimeError):
    """More sites failed than the plate's tolerance allows; nothing is written."""


class _ImageFailure(Exception):
    def __init__(self, kind: str, uri: str, channel: str, message: str) -> None:
        super().__init__(message)
        self.kind, self.uri, self.channel = kind, uri, channel


@dataclass
class _ChannelResult:
    fetched: FetchedObject
    raw_shape: tuple[int, int]
    array: np.ndarray
    low: float
    high: float
    illum_uri: str | None


@dataclass
class PlateResult:
    """Counters and failures of one plate's stream; `batches()` is the stream itself."""

    tasks: Sequence[SiteTask]
    read: ObjectReader
    recipe: Recipe
    channels: list[str]
    workers: int
    run_id: str
    expected_shape: tuple[int, int] | None = None
    batch_rows: int = 8
    max_failed_fraction: float = 0.0
    progress: Callable[[int, int], None] | None = None
    sites_ok: int = 0
    sites_failed: int = 0
    images: int = 0
    raw_bytes: int = 0
    processed_bytes: int = 0
    seconds: float = 0.0
    max_in_flight: int = 0
    failures: list[dict] = field(default_factory=list)
    _illum: dict[str, np.ndarray] = field(default_factory=dict)
    _illum_lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def window(self) -> int:
        return max(2 * self.workers, 1)

    def failures_table(self) -> pa.Table:
        return pa.Table.from_pylist(self.failures, schema=failed_images_schema())

    def failure_summary(self) -> str:
        kinds = Counter(f["error_kind"] for f in self.failures)
        first = ", ".join(f["uri"] for f in self.failures[:3])
        return (
            f"{self.sites_failed} of {len(self.tasks)} sites failed "
            f"({', '.join(f'{k}: {n}' for k, n in sorted(kinds.items()))}); first: {first}"
        )

    # -- per site, in worker threads ---------------------------------------------------------

    def _illumination(self, uri: str) -> np.ndarray:
        with self._illum_lock:
            if uri not in self._illum:
                self._illum[uri] = np.load(io.BytesIO(self.read(uri).data))
            return self._illum[uri]

    def _channel(self, task: SiteTask, index: int) -> _ChannelResult:
        source = task.channels[index]
        try:
            fetched = self.read(source.uri)
        except MissingObjectError as error:
            raise _ImageFailure("missing", source.uri, source.channel, str(error)) from error
        try:
            image = decode_tiff(fetched.data, page=source.frame, source=source.uri)
        except ImageDecodeError as error:
            raise _ImageFailure(error.kind, source.uri, source.channel, str(error)) from error
        if self.expected_shape and image.shape != tuple(self.expected_shape):
            raise _ImageFailure(
                "wrong_size",
                source.uri,
                source.channel,
                f"{source.uri}: shape {image.shape}, expected {tuple(self.expected_shape)}",
            )
        illum = None
        if self.recipe.needs_illum:
            if not source.illum_uri:
                raise _ImageFailure(
                    "missing", source.uri, source.channel, "no illumination function"
                )
            illum = self._illumination(source.illum_uri)
        processed = apply_recipe(self.recipe, image, illum)
        return _ChannelResult(
            fetched, image.shape, processed.array, processed.low, processed.high, source.illum_uri
        )

    def _site(self, task: SiteTask) -> dict | list[dict]:
        results = []
        for index in range(len(task.channels)):
            try:
                results.append(self._channel(task, index))
            except _ImageFailure as failure:
                return [self._failure(task, failure)]
        shapes = {r.raw_shape for r in results}
        if len(shapes) > 1:
            source = task.channels[0]
            failure = _ImageFailure(
                "wrong_size",
                source.uri,
                source.channel,
                f"channels differ in shape: {sorted(shapes)}",
            )
            return [self._failure(task, failure)]
        return self._row(task, results)

    def _failure(self, task: SiteTask, failure: _ImageFailure) -> dict:
        return {
            "failure_key": f"{task.site_key}__{failure.channel}",
            "uri": failure.uri,
            "site_key": task.site_key,
            "source": task.source,
            "plate": task.plate,
            "channel": failure.channel,
            "error_kind": failure.kind,
            "message": str(failure),
            "dagster_run_id": self.run_id,
            "failed_at": datetime.now(UTC),
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
            row |= {
                f"{c}_pixels": array.tobytes(),
                f"{c}_shape": list(array.shape),
                f"{c}_dtype": str(array.dtype),
                f"{c}_raw_uri": result.fetched.uri,
                f"{c}_raw_size": len(data),
                f"{c}_raw_md5": hashlib.md5(data).hexdigest(),
                f"{c}_raw_sha256": hashlib.sha256(data).hexdigest(),
                f"{c}_raw_etag": result.fetched.etag,
                f"{c}_raw_shape": list(result.raw_shape),
                f"{c}_crop_offset": list(crop_offset(result.raw_shape, crop)),
                f"{c}_low": result.low,
                f"{c}_high": result.high,
                f"{c}_illum_uri": result.illum_uri,
            }
        row |= {
            "recipe_name": self.recipe.name,
            "recipe_version": self.recipe.version,
            "recipe_params": self.recipe.params_json(),
            "package_version": __version__,
            "dagster_run_id": self.run_id,
            "written_at": datetime.now(UTC),
        }
        return row

    # -- the stream ----------------------------------------------------------------------------

    def _allowed_failures(self) -> float:
        return self.max_failed_fraction * len(self.tasks)

    def _account(self, outcome: dict | list[dict]) -> dict | None:
        if isinstance(outcome, list):
            self.sites_failed += 1
            self.failures.extend(outcome)
            if self.sites_failed > self._allowed_failures():
                raise TooManyFailures(self.failure_summary())
            return None
        self.sites_ok += 1
        self.images += len(self.channels)
        for channel in self.channels:
            c = channel_prefix(channel)
            self.raw_bytes += outcome[f"{c}_raw_size"]
            self.processed_bytes += len(outcome[f"{c}_pixels"])
        return outcome

    def _outcomes(self) -> Iterator[dict | list[dict]]:
        """Each site's outcome in task order, with at most `window` sites in flight."""
        pending: deque[Future] = deque()
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="site") as pool:
            try:
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
        """Record batches of up to batch_rows sites, in site_key order."""
        schema = site_images_schema(self.channels)
        started = time.perf_counter()
        rows: list[dict] = []
        try:
            for done, outcome in enumerate(self._outcomes(), start=1):
                row = self._account(outcome)
                if self.progress:
                    self.progress(done, len(self.tasks))
                if row is not None:
                    rows.append(row)
                if len(rows) >= self.batch_rows:
                    yield pa.RecordBatch.from_pylist(rows, schema=schema)
                    rows = []
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
    batch_rows: int = 8,
    max_failed_fraction: float = 0.0,
    progress: Callable[[int, int], None] | None = None,
) -> PlateResult:
    """The plate's stream (call `.batches()`), with counters filled in as it is consumed.

    Store outages (StoreUnavailableError after the store's own retries) propagate unchanged.
    """
    return PlateResult(
        tasks=list(tasks),
        read=read,
        recipe=recipe,
        channels=list(channels),
        workers=workers,
        run_id=run_id,
        expected_shape=expected_shape,
        batch_rows=batch_rows,
        max_failed_fraction=max_failed_fraction,
        progress=progress,
    )


__all__ = ["PlateResult", "StoreUnavailableError", "TooManyFailures", "process_sites"]
