"""Register manifests and ingest datasets into a lake: the work of the frames assets, minus Dagster.

- `register_manifest`: parse + validate the manifest against what is registered, check every new
  entry's file exists, then insert the good new rows in one commit (every bad row reported; with
  `strict`, any bad row registers nothing).
- `ingest_dataset`: one dataset through core's partition-write protocol (its lease, one commit,
  none when nothing changed): frames split and written to `frames.lance`, replacing the dataset's
  earlier frames, or a file stored as is (`dataset_files.lance`, the stored copy named relative to
  the lake root); then the dataset row gets its metadata and summary (only when something changed).
  A source that cannot be used is recorded in `dataset_failures.lance`; a later good ingest clears it.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa

from imaging_assets.core.errors import InputError, MissingObjectError
from imaging_assets.core.lake import Lake
from imaging_assets.core.lance_tables import quote
from imaging_assets.core.lease import RunAlive
from imaging_assets.core.partition_write import Partition, PartitionWrite, write_partition
from imaging_assets.core.provenance import PACKAGE_VERSION
from imaging_assets.core.stores import LocalStore, ObjectStore
from imaging_assets.frames import files, registry
from imaging_assets.frames.indexes import ensure_indexes
from imaging_assets.frames.ingest import IngestSummary, frame_batches
from imaging_assets.frames.manifest import Manifest, parse_manifest
from imaging_assets.frames.schema import (
    DATASET_FAILURES,
    DATASET_FILES,
    DATASETS,
    FAILURES_SCHEMA,
    FRAMES,
    dataset_files_schema,
    frames_schema,
)
from imaging_assets.frames.splitters import open_frames


@dataclass
class Registration:
    manifest: Manifest
    inserted: int
    manifest_sha256: str
    index_report: dict = field(default_factory=dict)


def register_manifest(
    lake: Lake, source: ObjectStore, manifest_uri: str, run_id: str, *, strict: bool = False
) -> Registration:
    """Check every row of the manifest and register its good new datasets (one commit).

    A row whose file (or position file) does not exist is bad like any other. Lenient (default):
    the good rows register and the bad ones are `registration.manifest.problems`; strict: any bad
    row registers nothing. Raises InputError (ManifestRefusedError, naming every bad row) when
    nothing may register, or when the manifest as a whole cannot be read.
    """
    from imaging_assets.frames.manifest import manifest_sha256, refusal

    fetched = source.read(manifest_uri)
    registered = registry.registered_contents(lake.uri(DATASETS), lake.storage_options)
    manifest = parse_manifest(fetched.data, fetched.uri, registered)
    absent = []
    for entry in manifest.new:
        locations = (
            [entry.file]
            if not entry.positions
            else [f"{entry.file.rstrip('/')}/{p}" for p in entry.positions]
        )
        for location in locations:
            if not (source.exists(location) or files.is_folder(source, location)):
                absent.append(
                    InputError(
                        fetched.uri,
                        f"{source.uri(location)} does not exist",
                        column=manifest.dialect.column("positions" if entry.positions else "file"),
                        row=entry.row,
                        expected="an existing file or folder",
                    )
                )
                break
    manifest = manifest.refuse(absent)
    refused = refusal(manifest, strict=strict)
    if refused is not None:
        raise refused
    at = registry.now_utc()
    rows = [registry.entry_row(e, source.uri(e.file), run_id, at) for e in manifest.new]
    inserted = registry.register(lake.uri(DATASETS), rows, lake.storage_options, run_id)
    report = ensure_indexes(
        lake.uri(DATASETS), DATASETS, lake.storage_options, compact_above_fragments=32
    )
    return Registration(manifest, inserted, manifest_sha256(fetched.data), report)


@dataclass
class IngestResult:
    dataset_id: str
    upload_type: str
    written: PartitionWrite | None = None
    summary: dict = field(default_factory=dict)
    stored: files.StoredFile | None = None
    seconds: float = 0.0

    @property
    def frames(self) -> int:
        return int(self.summary.get("frame_count", 0))


def ingest_dataset(
    lake: Lake,
    source: ObjectStore,
    dataset_id: str,
    run_id: str,
    *,
    run_alive: RunAlive | None = None,
    index: bool = True,
    max_removed_fraction: float | None = 0.0,
    measure_quality: bool = True,
) -> IngestResult:
    """Ingest one registered dataset (frames or file) and record its summary on its row.

    `index`: bring the frames table's indexes up to date afterwards (False for bulk loads that
    index once at the end). A re-ingest that would remove more than `max_removed_fraction` of
    the dataset's frames (the file now yields fewer) is refused before anything is committed
    (None: no limit). `measure_quality`: CellProfiler's image-quality features of each frame.
    """
    from imaging_assets.frames.reading import get_dataset

    started = time.perf_counter()
    row = get_dataset(lake.root, dataset_id, lake.storage_options)
    try:
        if row["upload_type"] == "file":
            result = _ingest_file(lake, source, row, run_id, run_alive)
        else:
            result = _ingest_frames(
                lake, source, row, run_id, run_alive, max_removed_fraction, measure_quality
            )
    except (InputError, MissingObjectError) as error:  # the source cannot be used as it is
        _record_failures(lake, row, [error], run_id, run_alive)
        raise
    _record_failures(lake, row, [], run_id, run_alive)  # earlier failures no longer occur
    if index:
        ensure_indexes(lake.uri(FRAMES), FRAMES, lake.storage_options)
    # the small datasets table gets one fragment per row update: always keep it compact and
    # indexed, or every lookup and update of a dataset row slows down with the number of ingests
    ensure_indexes(
        lake.uri(DATASETS),
        DATASETS,
        lake.storage_options,
        compact_above_fragments=32,
    )
    result.seconds = time.perf_counter() - started
    return result


def dataset_partition(table: str, dataset_id: str) -> Partition:
    """One dataset's rows of one of the frames tables, as the partition-write protocol takes it."""
    key = {DATASET_FILES: "dataset_id", DATASET_FAILURES: "failure_key"}.get(table, "frame_key")
    return Partition(table, dataset_id, f"dataset_id = {quote(dataset_id)}", key, "dataset")


def _record_failures(
    lake: Lake, row: dict, errors: list[Exception], run_id: str, run_alive: RunAlive | None
) -> None:
    """Make the dataset's rows of dataset_failures exactly `errors` (none: earlier ones go), so a
    dataset whose file cannot be used is queryable later; unchanged, nothing commits."""
    dataset_id = row["dataset_id"]
    at = registry.now_utc()
    rows = [
        {
            "failure_key": f"{dataset_id}__{n}",
            "dataset_id": dataset_id,
            "kind": type(error).__name__,
            "detail": str(error)[:2000],
            "source_uri": row["source_uri"],
            "read_uri": getattr(error, "uri", None) or row["source_uri"],
            "package_version": PACKAGE_VERSION,
            "dagster_run_id": run_id,
            "written_at": at,
        }
        for n, error in enumerate(errors)
    ]
    write_partition(
        lake,
        dataset_partition(DATASET_FAILURES, dataset_id),
        FAILURES_SCHEMA,
        pa.Table.from_pylist(rows, schema=FAILURES_SCHEMA).to_batches(),
        run_id=run_id,
        run_alive=run_alive,
        max_removed_fraction=None,  # failures that no longer occur are meant to go
    )


def _ingest_file(lake: Lake, source, row, run_id, run_alive) -> IngestResult:
    dataset_id = row["dataset_id"]
    stored = files.store_file(source, row["source_uri"], lake, dataset_id)
    record = {
        "dataset_id": dataset_id,
        "source_uri": stored.source_uri,
        "stored_uri": stored.stored_uri,
        "read_uri": stored.source_uri,
        "copied": stored.copied,
        "size": stored.size,
        "sha256": stored.sha256,
        "etag": stored.etag,
        "package_version": PACKAGE_VERSION,
        "dagster_run_id": run_id,
        "stored_at": registry.now_utc(),
    }
    schema = dataset_files_schema()
    written = write_partition(
        lake,
        dataset_partition(DATASET_FILES, dataset_id),
        schema,
        [pa.RecordBatch.from_pylist([record], schema=schema)],
        run_id=run_id,
        run_alive=run_alive,
        max_removed_fraction=None,  # one row, replaced by the file as it is now
        volatile=("dagster_run_id", "stored_at"),
    )
    summary = {"size": stored.size, "sha256": stored.sha256, "stored_uri": stored.stored_uri}
    # unchanged rows still mend a row that a crash left unmarked after the commit
    if written.changed or not row.get("ingested"):
        registry.update_dataset(
            lake.uri(DATASETS),
            dataset_id,
            {
                "ingested": True,
                "frames": False,
                "summary": summary,
                "bytes": stored.size,
                "frame_count": 0,
                "ingested_at": registry.now_utc(),
                "ingested_run_id": run_id,
            },
            lake.storage_options,
        )
    return IngestResult(dataset_id, "file", written=written, summary=summary, stored=stored)


def _ingest_frames(
    lake: Lake, source, row, run_id, run_alive, max_removed_fraction, measure_quality=True
) -> IngestResult:
    dataset_id = row["dataset_id"]
    positions = [p for p in (row.get("positions") or "").split(";") if p]
    fmt = row.get("format") or "auto"
    summary = IngestSummary(dataset_id)
    remote_uri = None if isinstance(source, LocalStore) else row["source_uri"]
    with contextlib.ExitStack() as stack:
        location = row["source_uri"]
        if positions:
            folder = Path(stack.enter_context(files.localized(source, location)))
            frame_source = open_frames(folder, "ome-tiff", [Path(p) for p in positions])
        else:
            ndtiff_file = fmt == "ndtiff" or location.lower().endswith(("ndtiffstack.tif",))
            local = stack.enter_context(
                files.localized(source, location, with_siblings=ndtiff_file)
            )
            frame_source = open_frames(local, fmt)

        def at_least_one_frame(rows: int) -> None:
            if rows == 0:
                raise InputError(
                    frame_source.path, "no frames found", expected="at least one frame"
                )

        written = write_partition(
            lake,
            dataset_partition(FRAMES, dataset_id),
            frames_schema(),
            frame_batches(
                dataset_id,
                frame_source,
                run_id,
                summary,
                source_uri=remote_uri,
                measure_quality=measure_quality,
            ),
            run_id=run_id,
            run_alive=run_alive,
            max_removed_fraction=max_removed_fraction,
            allow_hint="max_removed_fraction 1.0 (asset config ops.frames.config), if the source "
            "really changed",
            before_commit=at_least_one_frame,
        )
        # unchanged frames still mend a row that a crash left unmarked after the commit
        if written.changed or not row.get("ingested"):
            registry.update_dataset(
                lake.uri(DATASETS),
                dataset_id,
                {
                    "ingested": True,
                    "frames": True,
                    "global_meta": frame_source.global_meta,
                    **summary.dataset_columns(frame_source),
                    "ingested_at": registry.now_utc(),
                    "ingested_run_id": run_id,
                },
                lake.storage_options,
            )
    return IngestResult(
        dataset_id, "frames", written=written, summary=summary.as_dict(frame_source)
    )
