"""Integrity: re-hash frames and stored file uploads against the sha256 recorded at ingest.

A frame whose bytes changed in the lake (bit rot, a bad copy, a flipped byte in a data file) is
reported with its dataset and (c, z, t, p); a frame that can no longer be decoded at all is
reported the same way with the error instead of a hash.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import lance

from imaging_assets.core.errors import MissingObjectError
from imaging_assets.core.lake import Lake
from imaging_assets.core.lance_tables import quote
from imaging_assets.core.stores import ObjectStore
from imaging_assets.core.verify import Mismatch as CoreMismatch
from imaging_assets.core.verify import VerifyReport as CoreReport
from imaging_assets.frames import reading
from imaging_assets.frames.ingest import frame_sha256
from imaging_assets.frames.schema import DATASET_FILES, DATASETS, FRAMES

KEY_COLUMNS = ["frame_key", "dataset_id", "c", "z", "t", "p", "sha256"]


@dataclass(frozen=True)
class Mismatch:
    dataset_id: str
    kind: str  # "frame" or "file"
    where: str  # "c=0 z=3 t=1 p=0" or the stored URI
    expected: str | None
    actual: str | None
    detail: str = ""
    indices: tuple[int, int, int, int] | None = None

    def describe(self) -> str:
        what = f"{self.dataset_id} {self.kind} {self.where}"
        if self.actual is None:
            return f"{what}: unreadable ({self.detail})"
        return f"{what}: sha256 {self.actual} != recorded {self.expected}"


@dataclass
class VerifyReport:
    frames_checked: int = 0
    files_checked: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches

    def merge(self, other: VerifyReport) -> VerifyReport:
        self.frames_checked += other.frames_checked
        self.files_checked += other.files_checked
        self.mismatches.extend(other.mismatches)
        return self


def _ids_filter(dataset_ids: Iterable[str] | None) -> str | None:
    ids = list(dataset_ids or [])
    if not ids:
        return None
    return f"dataset_id IN ({', '.join(quote(i) for i in ids)})"


def _frame_mismatch(row: dict, actual: str | None, detail: str = "") -> Mismatch:
    idx = (row["c"], row["z"], row["t"], row["p"])
    return Mismatch(
        dataset_id=row["dataset_id"],
        kind="frame",
        where=f"c={idx[0]} z={idx[1]} t={idx[2]} p={idx[3]}",
        expected=row["sha256"],
        actual=actual,
        detail=detail,
        indices=idx,
    )


def verify_frames(
    root: str,
    storage_options: dict | None = None,
    dataset_ids: Iterable[str] | None = None,
    *,
    frame_keys: list[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> VerifyReport:
    """Re-hash the frames of the given datasets (all when None), or just `frame_keys`."""
    report = VerifyReport()
    dataset = reading._open(root, FRAMES, storage_options)  # noqa: SLF001
    if dataset is None:
        return report
    if frame_keys is not None:
        if not frame_keys:
            return report
        filter_ = f"frame_key IN ({', '.join(quote(k) for k in frame_keys)})"
    else:
        filter_ = _ids_filter(dataset_ids)
    total = dataset.count_rows(filter=filter_)
    try:
        for row, data in reading.iter_pixels(dataset, filter_, KEY_COLUMNS):
            report.frames_checked += 1
            actual = frame_sha256(data)
            if actual != row["sha256"]:
                report.mismatches.append(_frame_mismatch(row, actual))
            if progress:
                progress(report.frames_checked, total)
    except (OSError, ValueError, RuntimeError) as error:
        # a page that cannot be decoded at all: find which frames, one by one
        return _verify_one_by_one(dataset, filter_, error, progress, total)
    return report


def _verify_one_by_one(
    dataset: lance.LanceDataset, filter_: str | None, first_error: BaseException, progress, total
) -> VerifyReport:
    report = VerifyReport()
    keys = dataset.to_table(columns=KEY_COLUMNS, filter=filter_).to_pylist()
    for row in keys:
        report.frames_checked += 1
        try:
            _, data = next(
                reading.iter_pixels(
                    dataset, f"frame_key = {quote(row['frame_key'])}", ["frame_key"]
                )
            )
            actual = frame_sha256(data)
            if actual != row["sha256"]:
                report.mismatches.append(_frame_mismatch(row, actual))
        except (OSError, ValueError, RuntimeError, StopIteration) as error:
            report.mismatches.append(
                _frame_mismatch(row, None, f"{type(error).__name__}: {error}"[:300])
            )
        if progress:
            progress(report.frames_checked, total)
    if not report.mismatches:  # the scan failed but every frame reads: report the scan error
        report.mismatches.append(
            Mismatch(
                "*", "frame", "scan", None, None, f"{type(first_error).__name__}: {first_error}"
            )
        )
    return report


def verify_files(
    root: str,
    lake_store: ObjectStore,
    storage_options: dict | None = None,
    dataset_ids: Iterable[str] | None = None,
) -> VerifyReport:
    """Re-hash stored uploads of type `file` (streamed) against their recorded sha256, at the
    lake they are in now (a `lake:` reference resolves under `lake_store`'s root)."""
    from imaging_assets.frames.files import hash_object, stored_location

    report = VerifyReport()
    table = reading._open(root, DATASET_FILES, storage_options)  # noqa: SLF001
    if table is None:
        return report
    for row in table.to_table(filter=_ids_filter(dataset_ids)).to_pylist():
        report.files_checked += 1
        stored = stored_location(row["stored_uri"])
        try:
            size, actual = hash_object(lake_store, stored)
        except (MissingObjectError, OSError) as error:
            report.mismatches.append(
                Mismatch(
                    row["dataset_id"], "file", row["stored_uri"], row["sha256"], None, str(error)
                )
            )
            continue
        if actual != row["sha256"] or size != row["size"]:
            report.mismatches.append(
                Mismatch(
                    row["dataset_id"],
                    "file",
                    row["stored_uri"],
                    row["sha256"],
                    actual,
                    f"size {size} (recorded {row['size']})",
                )
            )
    return report


def sample_frame_keys(
    root: str, dataset_id: str, storage_options: dict | None = None, n: int = 8
) -> list[str]:
    """A deterministic, evenly spread sample of a dataset's frame keys."""
    dataset = reading._open(root, FRAMES, storage_options)  # noqa: SLF001
    if dataset is None:
        return []
    keys = sorted(
        dataset.to_table(columns=["frame_key"], filter=f"dataset_id = {quote(dataset_id)}")
        .column("frame_key")
        .to_pylist()
    )
    if len(keys) <= n:
        return keys
    step = len(keys) / n
    return [keys[int(i * step)] for i in range(n)]


def registered_ids(root: str, storage_options: dict | None = None) -> set[str]:
    dataset = reading._open(root, DATASETS, storage_options)  # noqa: SLF001
    if dataset is None:
        return set()
    return set(dataset.to_table(columns=["dataset_id"])["dataset_id"].to_pylist())


def verify_datasets(
    lake: Lake,
    dataset_ids: Sequence[str] | None = None,
    sample: int | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> CoreReport:
    """Frames and stored files of every dataset (or `dataset_ids`; an unregistered id is
    reported as unknown), as the report every domain's verify gives. `sample` frames per
    dataset, spread evenly (None: all)."""
    report = CoreReport()
    known = registered_ids(lake.root, lake.storage_options)
    wanted = list(dataset_ids or [])
    report.unknown += [i for i in wanted if i not in known]
    ids = [i for i in wanted if i in known] or (None if not wanted else [])
    if ids == []:
        return report
    if sample is None:
        frames = verify_frames(lake.root, lake.storage_options, ids, progress=progress)
    else:
        frames = VerifyReport()
        for dataset_id in ids or sorted(known):
            keys = sample_frame_keys(lake.root, dataset_id, lake.storage_options, n=sample)
            frames.merge(verify_frames(lake.root, lake.storage_options, frame_keys=keys))
    frames.merge(verify_files(lake.root, lake.store, lake.storage_options, ids))
    report.checked["frames"] += frames.frames_checked
    report.checked["stored files"] += frames.files_checked
    report.mismatches += [
        CoreMismatch(m.dataset_id, m.kind, m.where, m.expected, m.actual, m.detail)
        for m in frames.mismatches
    ]
    return report
