"""Register manifests and ingest datasets into a lake: the work of the frames assets, minus Dagster.

- `register_manifest`: parse + validate the manifest against what is registered, check every new
  entry's file exists, then insert the new rows in one commit (all or nothing).
- `ingest_dataset`: one dataset, under the lease of its partition: frames split and written to
  `frames.lance` in one merge_insert commit that replaces the dataset's earlier frames, or a file
  stored as is (`dataset_files.lance`); then the dataset row gets its metadata and summary.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import lance
import pyarrow as pa
from lance.fragment import write_fragments

from imaging_assets.core import lance_tables
from imaging_assets.core.errors import InputError
from imaging_assets.core.lance_tables import RemovalRefusedError, quote
from imaging_assets.core.lease import RunAlive, partition_lease
from imaging_assets.core.stores import LocalStore, ObjectStore
from imaging_assets.frames import files, registry
from imaging_assets.frames.indexes import ensure_indexes
from imaging_assets.frames.ingest import IngestSummary, frame_batches
from imaging_assets.frames.manifest import Manifest, parse_manifest
from imaging_assets.frames.schema import (
    DATASET_FILES,
    DATASETS,
    FRAMES,
    dataset_files_schema,
    frames_schema,
)
from imaging_assets.frames.splitters import open_frames


@dataclass(frozen=True)
class LakeTarget:
    """Where the frames tables live: a root URI (local path or s3://), its store and options."""

    root: str
    store: ObjectStore
    storage_options: dict | None = None

    def uri(self, name: str) -> str:
        return f"{self.root.rstrip('/')}/{name}.lance"


@dataclass
class Registration:
    manifest: Manifest
    inserted: int
    manifest_sha256: str
    index_report: dict = field(default_factory=dict)


def register_manifest(
    lake: LakeTarget, source: ObjectStore, manifest_uri: str, run_id: str
) -> Registration:
    """Validate the manifest and register its new datasets (one commit), or raise InputError."""
    from imaging_assets.frames.manifest import manifest_sha256

    fetched = source.read(manifest_uri)
    registered = registry.registered_contents(lake.uri(DATASETS), lake.storage_options)
    manifest = parse_manifest(fetched.data, fetched.uri, registered)
    for entry in manifest.new:
        locations = (
            [entry.file]
            if not entry.positions
            else [f"{entry.file.rstrip('/')}/{p}" for p in entry.positions]
        )
        for location in locations:
            if not (source.exists(location) or files.is_folder(source, location)):
                raise InputError(
                    fetched.uri,
                    f"{source.uri(location)} does not exist",
                    column="positions" if entry.positions else "file",
                    row=entry.row,
                    expected="an existing file or folder",
                )
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
    commit: lance_tables.CommitResult | None = None
    summary: dict = field(default_factory=dict)
    stored: files.StoredFile | None = None
    seconds: float = 0.0

    @property
    def frames(self) -> int:
        return int(self.summary.get("frame_count", 0))


def ingest_dataset(
    lake: LakeTarget,
    source: ObjectStore,
    dataset_id: str,
    run_id: str,
    *,
    run_alive: RunAlive | None = None,
    index: bool = True,
    max_removed_fraction: float | None = 0.0,
) -> IngestResult:
    """Ingest one registered dataset (frames or file) and record its summary on its row.

    `index`: bring the frames table's indexes up to date afterwards (False for bulk loads that
    index once at the end). A re-ingest that would remove more than `max_removed_fraction` of
    the dataset's frames (the file now yields fewer) is refused before anything is committed
    (None: no limit).
    """
    from imaging_assets.frames.reading import get_dataset

    started = time.perf_counter()
    row = get_dataset(lake.root, dataset_id, lake.storage_options)
    if row["upload_type"] == "file":
        result = _ingest_file(lake, source, row, run_id, run_alive)
    else:
        result = _ingest_frames(lake, source, row, run_id, run_alive, max_removed_fraction)
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


def _ingest_file(lake, source, row, run_id, run_alive) -> IngestResult:
    dataset_id = row["dataset_id"]
    with partition_lease(
        lake.store, DATASET_FILES, dataset_id, run_id, run_alive=run_alive
    ) as lease:
        stored = files.store_file(source, row["source_uri"], lake.store, dataset_id)
        lease.assert_held()
        registry.record_file(
            lake.uri(DATASET_FILES),
            {
                "dataset_id": dataset_id,
                "source_uri": stored.source_uri,
                "stored_uri": stored.stored_uri,
                "copied": stored.copied,
                "size": stored.size,
                "sha256": stored.sha256,
                "etag": stored.etag,
                "dagster_run_id": run_id,
                "stored_at": registry.now_utc(),
            },
            lake.storage_options,
        )
        lance_tables.ensure_dataset(
            lake.uri(DATASET_FILES), dataset_files_schema(), lake.storage_options
        )
        summary = {"size": stored.size, "sha256": stored.sha256, "stored_uri": stored.stored_uri}
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
    return IngestResult(dataset_id, "file", summary=summary, stored=stored)


def append_partition(
    uri: str,
    batches: Iterator[pa.RecordBatch],
    schema: pa.Schema,
    *,
    storage_options: dict | None = None,
    properties: dict[str, str] | None = None,
    before_commit: Callable[[lance_tables.CommitResult], None] | None = None,
) -> lance_tables.CommitResult:
    """Add a partition that has no rows yet in one Append commit (fragments written first).

    Only under the partition's lease, after checking it has no rows: two pure inserts of the same
    partition would both succeed. Unlike merge_insert it does not join against the whole table,
    so a first ingest costs the same however big frames.lance is. A stream that raises, or a
    `before_commit` veto, commits nothing.
    """
    dataset = lance_tables.ensure_dataset(uri, schema, storage_options)
    rows = [0]
    error: list[BaseException] = []

    def counted() -> Iterator[pa.RecordBatch]:
        try:
            for batch in batches:
                rows[0] += batch.num_rows
                yield batch
        except BaseException as exc:
            error.append(exc)
            raise

    reader = pa.RecordBatchReader.from_batches(schema, counted())
    try:
        transaction = write_fragments(
            reader, dataset, schema=schema, return_transaction=True, storage_options=storage_options
        )
    except Exception:
        if error:
            raise error[0] from None
        raise
    transaction.transaction_properties = dict(properties or {})
    preview = lance_tables.CommitResult(uri, -1, rows[0], rows[0], 0, 0)
    if before_commit is not None:
        before_commit(preview)
    committed = lance.LanceDataset.commit(
        uri, transaction, read_version=dataset.version, storage_options=storage_options
    )
    return lance_tables.CommitResult(uri, committed.version, rows[0], rows[0], 0, 0)


def _ingest_frames(lake, source, row, run_id, run_alive, max_removed_fraction) -> IngestResult:
    dataset_id = row["dataset_id"]
    positions = [p for p in (row.get("positions") or "").split(";") if p]
    fmt = row.get("format") or "auto"
    summary = IngestSummary(dataset_id)
    remote_uri = None if isinstance(source, LocalStore) else row["source_uri"]
    partition_filter = f"dataset_id = {quote(dataset_id)}"
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
        with partition_lease(lake.store, FRAMES, dataset_id, run_id, run_alive=run_alive) as lease:
            current = lance_tables.open_dataset(lake.uri(FRAMES), lake.storage_options)
            existing = 0 if current is None else current.count_rows(filter=partition_filter)

            def before_commit(preview: lance_tables.CommitResult) -> None:
                lease.assert_held()
                allowed = lance_tables.allowed_removals(existing, max_removed_fraction)
                if allowed is not None and preview.rows_deleted > allowed:
                    raise RemovalRefusedError(
                        f"{dataset_id}: re-ingesting would remove {preview.rows_deleted} of its "
                        f"{existing} frames (the source now yields {summary.frame_count}); "
                        "nothing was committed. If the source really changed, re-run with "
                        "max_removed_fraction 1.0 (asset config ops.frames.config)"
                    )
                if summary.frame_count == 0:
                    raise InputError(
                        frame_source.path, "no frames found", expected="at least one frame"
                    )

            batches = frame_batches(
                dataset_id, frame_source, run_id, summary, source_uri=remote_uri
            )
            properties = {"dagster_run_id": run_id, "partition": dataset_id}
            if existing == 0:  # first ingest: an append, no join against the whole table
                commit = append_partition(
                    lake.uri(FRAMES),
                    batches,
                    frames_schema(),
                    storage_options=lake.storage_options,
                    properties=properties,
                    before_commit=before_commit,
                )
            else:
                commit = lance_tables.replace_partition(
                    lake.uri(FRAMES),
                    batches,
                    frames_schema(),
                    key="frame_key",
                    partition_filter=partition_filter,
                    storage_options=lake.storage_options,
                    properties=properties,
                    before_commit=before_commit,
                )
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
    return IngestResult(dataset_id, "frames", commit=commit, summary=summary.as_dict(frame_source))
