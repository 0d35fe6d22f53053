"""The one way a partition (a plate, a specimen, a frame dataset) is written to a Lance dataset.

    take the partition's lease
    └─ stream the rows into new data files (bounded memory; nothing visible yet), hashing them
       ├─ same content as the last committed write (partition record) → delete the staged files,
       │  no commit ("unchanged": no new version, no new bytes)
       ├─ would remove rows an earlier run wrote beyond the allowed share → refuse, no commit
       └─ fence the lease, then ONE commit: the partition's old rows deleted and the new data
          files added (Lance `Update`). A commit another partition's commit preempted is rebased:
          the deletions are recomputed against the newer version and the same files committed
          again, so the partition is never recomputed because another one won a race.
    └─ record the outcome (`_partitions/<dataset>/<partition>.json`: digest, rows, version, run)

Why not `merge_insert` (what plates used before): it holds the whole source stream in memory
before committing (measured with pylance 14: a plate's peak memory grew 2.8x its stored bytes),
and a conflicting commit forced the plate to be processed again.

Volatile columns (the run id and the time written) are left out of the content digest, so a re-run
that writes the same rows is recognised as unchanged.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import itertools
import json
import logging
import random
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field

import lance
import pyarrow as pa
import pyarrow.compute as pc
from lance.commit import CommitConflictError
from lance.fragment import FragmentMetadata, write_fragments

from imaging_assets.core import lance_tables
from imaging_assets.core.errors import MissingObjectError
from imaging_assets.core.lake import Lake
from imaging_assets.core.lance_tables import (
    ConcurrentPartitionWriteError,
    IndexReport,
    RemovalRefusedError,
)
from imaging_assets.core.lease import RunAlive, partition_lease

log = logging.getLogger(__name__)

RECORDS_DIR = "_partitions"
VOLATILE_COLUMNS = ("dagster_run_id", "written_at")
COMMIT_ATTEMPTS = 8
REMOVED_EXAMPLES = 5


@dataclass(frozen=True)
class Partition:
    """One partition of one dataset: `<lake>/<dataset>.lance`, rows selected by `filter`."""

    dataset: str  # dataset name under the lake, e.g. "site_images"
    key: str  # partition key: "<source>__<plate>", a specimen, a dataset id
    filter: str  # Lance SQL filter that selects exactly this partition's rows
    row_key: str  # the column whose value is unique per row
    noun: str = "partition"  # how messages name it: "plate", "specimen", "dataset"


@dataclass(frozen=True)
class PartitionRecord:
    """What the last write of a partition left: read to tell an unchanged re-run."""

    state: str  # "committing" (a commit may or may not have landed) or "committed"
    digest: str
    rows: int
    version: int
    run_id: str
    written_at: str

    @classmethod
    def parse(cls, data: bytes) -> PartitionRecord | None:
        try:
            content = json.loads(data)
            return cls(**{k: content[k] for k in cls.__dataclass_fields__})
        except (ValueError, TypeError, KeyError):
            return None


def record_key(dataset: str, partition: str) -> str:
    return f"{RECORDS_DIR}/{dataset}/{partition}.json"


def read_record(lake: Lake, dataset: str, partition: str) -> PartitionRecord | None:
    """The partition's record, None when it was never written (or the record is unreadable)."""
    try:
        return PartitionRecord.parse(lake.store.read(record_key(dataset, partition)).data)
    except MissingObjectError:
        return None


def _write_record(lake: Lake, dataset: str, partition: str, record: PartitionRecord) -> None:
    lake.store.write_bytes(record_key(dataset, partition), json.dumps(asdict(record)).encode())


@dataclass
class PartitionWrite:
    """What a write did. `changed` False: the content equalled the last write; nothing committed."""

    uri: str
    partition: str
    changed: bool
    version: int
    rows: int  # the partition's rows now
    rows_before: int
    rows_removed: int  # rows of the earlier write that this one did not write again
    total_rows: int  # the dataset's rows now
    digest: str
    bytes_staged: int = 0
    commit_attempts: int = 0
    seconds: float = 0.0
    indexes: dict[str, IndexReport] = field(default_factory=dict)

    @property
    def outcome(self) -> str:
        return "written" if self.changed else "unchanged"


class _Stream:
    """The rows on their way to the data files: aligned, counted, hashed, keys kept."""

    def __init__(
        self,
        batches: Iterable[pa.RecordBatch],
        schema: pa.Schema,
        row_key: str,
        volatile: tuple[str, ...],
    ) -> None:
        self._batches = batches
        self.schema = schema
        self.row_key = row_key
        self.rows = 0
        self.error: BaseException | None = None
        self.keys: list[pa.Array] = []
        self._hashed = [name for name in schema.names if name not in volatile]
        hashed_fields = ", ".join(f"{f.name}: {f.type}" for f in schema if f.name in self._hashed)
        self._digest = hashlib.sha256(hashed_fields.encode())

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        try:
            for batch in self._batches:
                if batch.schema != self.schema:
                    batch = lance_tables.align_batch(batch, self.schema)
                if batch.num_rows == 0:
                    continue
                self.rows += batch.num_rows
                self.keys.append(batch.column(self.row_key))
                self._digest.update(batch.select(self._hashed).serialize())
                yield batch
        except BaseException as error:
            self.error = error
            raise

    @property
    def digest(self) -> str:
        return self._digest.hexdigest()

    def key_array(self) -> pa.Array:
        if not self.keys:
            return pa.array([], self.schema.field(self.row_key).type)
        return pa.chunked_array(self.keys).combine_chunks()


def write_partition(
    lake: Lake,
    partition: Partition,
    schema: pa.Schema,
    batches: Iterable[pa.RecordBatch],
    *,
    run_id: str,
    run_alive: RunAlive | None = None,
    max_removed_fraction: float | None = 0.0,
    allow_hint: str = "config max_removed_fraction: 1.0",
    evolve: bool = False,
    index_columns: tuple[str, ...] = (),
    volatile: tuple[str, ...] = VOLATILE_COLUMNS,
    max_rows_per_file: int | None = None,
    allow_external_blobs: bool = False,
    before_commit: Callable[[int], None] | None = None,
) -> PartitionWrite:
    """Make the partition's rows of `<lake>/<partition.dataset>.lance` exactly `batches`.

    Under the partition's lease; one commit or none (unchanged content, a refusal, a stream that
    raises: its own exception propagates and nothing becomes visible). A re-run that would remove
    more than `max_removed_fraction` of the partition's existing rows (None: any) is a
    RemovalRefusedError naming how many rows and which keys. `before_commit(rows)` may veto the
    commit by raising, after the stream was read. With `evolve`, columns that differ across
    writers are added as nulls (profiles of several sources).
    """
    started = time.perf_counter()
    uri = lake.uri(partition.dataset)
    options = lake.storage_options
    with partition_lease(
        lake.store, partition.dataset, partition.key, run_id, run_alive=run_alive
    ) as lease:
        if lance_tables.open_dataset(uri, options) is None:
            batches = _first_rows(batches)
            if batches is None:  # nothing to write and no dataset yet: do not create one
                return _nothing_yet(lake, partition, run_id, started)
        dataset = lance_tables.ensure_dataset(uri, schema, options, evolve=evolve)
        writer_schema = dataset.schema if evolve or dataset.schema.names != schema.names else schema
        stream = _Stream(batches, writer_schema, partition.row_key, volatile)
        staged = _stage(uri, stream, dataset, options, max_rows_per_file, allow_external_blobs)
        try:
            keys = stream.key_array()
            _refuse_duplicate_keys(partition, keys)
            existing = _existing_keys(dataset, partition)
            removed = _removed(existing, keys)
            record = read_record(lake, partition.dataset, partition.key)
            result = PartitionWrite(
                uri=uri,
                partition=partition.key,
                changed=True,
                version=dataset.version,
                rows=stream.rows,
                rows_before=len(existing),
                rows_removed=len(removed),
                total_rows=-1,
                digest=stream.digest,
                bytes_staged=sum(f.file_size_bytes or 0 for m in staged for f in m.data_files()),
            )
            if _unchanged(record, result):
                _discard(lake, partition.dataset, staged)
                result.changed, result.bytes_staged = False, 0
                result.total_rows = dataset.count_rows()
                result.seconds = time.perf_counter() - started
                return result
            allowed = lance_tables.allowed_removals(len(existing), max_removed_fraction)
            if allowed is not None and len(removed) > allowed:
                raise _refusal(partition, removed, len(existing), allow_hint)
            if before_commit is not None:
                before_commit(stream.rows)
        except BaseException:
            _discard(lake, partition.dataset, staged)
            raise
        pending = PartitionRecord(
            "committing", stream.digest, stream.rows, dataset.version, run_id, _now()
        )
        _write_record(lake, partition.dataset, partition.key, pending)
        committed, attempts = _commit(uri, options, partition, staged, lease, run_id, stream.digest)
        result.version, result.commit_attempts = committed.version, attempts
        result.total_rows = committed.count_rows()
        _write_record(
            lake,
            partition.dataset,
            partition.key,
            PartitionRecord(
                "committed", stream.digest, stream.rows, committed.version, run_id, _now()
            ),
        )
    for column in index_columns:
        result.indexes[column] = lance_tables.ensure_key_index(uri, column, options)
    result.seconds = time.perf_counter() - started
    return result


def _first_rows(batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch] | None:
    """The stream again, or None when it holds no rows at all (read up to its first row)."""
    iterator = iter(batches)
    for batch in iterator:
        if batch.num_rows:
            return itertools.chain([batch], iterator)
    return None


def _nothing_yet(lake: Lake, partition: Partition, run_id: str, started: float) -> PartitionWrite:
    """A partition with no rows in a dataset that does not exist: recorded, nothing created."""
    digest = hashlib.sha256(b"").hexdigest()
    record = read_record(lake, partition.dataset, partition.key)
    changed = record is None or record.rows != 0
    if changed:
        _write_record(
            lake,
            partition.dataset,
            partition.key,
            PartitionRecord("committed", digest, 0, 0, run_id, _now()),
        )
    return PartitionWrite(
        uri=lake.uri(partition.dataset),
        partition=partition.key,
        changed=changed,
        version=0,
        rows=0,
        rows_before=0,
        rows_removed=0,
        total_rows=0,
        digest=digest,
        seconds=time.perf_counter() - started,
    )


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def _stage(
    uri: str,
    stream: _Stream,
    dataset: lance.LanceDataset,
    options: dict | None,
    max_rows_per_file: int | None,
    allow_external_blobs: bool,
) -> list[FragmentMetadata]:
    """Write the stream into new data files of the dataset (not yet part of any version)."""
    reader = pa.RecordBatchReader.from_batches(stream.schema, iter(stream))
    extra = {"max_rows_per_file": max_rows_per_file} if max_rows_per_file else {}
    try:
        return write_fragments(
            reader,
            uri,
            schema=stream.schema,
            storage_options=options,
            data_storage_version=dataset.data_storage_version,
            allow_external_blob_outside_bases=allow_external_blobs,
            **extra,
        )
    except Exception as error:
        if stream.error is not None:  # the stream's own error, with its type intact
            raise stream.error from None
        raise error


def _discard(lake: Lake, dataset: str, staged: list[FragmentMetadata]) -> None:
    """Delete staged data files that no version will reference (best effort: cleanup does it too)."""
    for fragment in staged:
        for data_file in fragment.data_files():
            with contextlib.suppress(Exception):
                lake.store.delete(f"{dataset}.lance/data/{data_file.path}")


def _refuse_duplicate_keys(partition: Partition, keys: pa.Array) -> None:
    if len(keys) and pc.count_distinct(keys).as_py() != len(keys):
        counts = pc.value_counts(keys)
        repeated = [
            v["values"] for v in counts.to_pylist() if v["counts"] > 1 and v["values"] is not None
        ][:REMOVED_EXAMPLES]
        raise ValueError(
            f"{partition.dataset} {partition.noun} {partition.key}: the rows repeat keys of "
            f"column {partition.row_key} (e.g. {', '.join(map(str, repeated))}); every row needs "
            "its own key. Nothing was committed."
        )


def _existing_keys(dataset: lance.LanceDataset, partition: Partition) -> pa.Array:
    table = dataset.to_table(columns=[partition.row_key], filter=partition.filter)
    return table.column(partition.row_key).combine_chunks()


def _removed(existing: pa.Array, keys: pa.Array) -> pa.Array:
    if len(existing) == 0:
        return existing
    return existing.filter(pc.invert(pc.is_in(existing, value_set=keys)))


def _unchanged(record: PartitionRecord | None, result: PartitionWrite) -> bool:
    return (
        record is not None
        and record.state == "committed"
        and record.digest == result.digest
        and record.rows == result.rows == result.rows_before
        and result.rows_removed == 0
    )


def _refusal(
    partition: Partition, removed: pa.Array, existing: int, allow_hint: str
) -> RemovalRefusedError:
    examples = sorted(map(str, removed.to_pylist()))[:REMOVED_EXAMPLES]
    return RemovalRefusedError(
        f"{partition.dataset} {partition.noun} {partition.key}: this run would remove "
        f"{len(removed)} of the {partition.noun}'s {existing} existing rows that it does not "
        f"write again (e.g. {', '.join(examples)}); nothing was committed. This is usually an "
        "upstream table that lost rows or inputs that failed this time. To allow it, re-run "
        f"with {allow_hint}."
    )


def _partition_deletions(
    dataset: lance.LanceDataset, partition_filter: str
) -> tuple[list[int], list[FragmentMetadata]]:
    """The fragments to drop and the deletion files to add so that no row of the partition stays."""
    addresses = dataset.to_table(columns=[], filter=partition_filter, with_row_address=True)
    fragment_ids = pc.shift_right(addresses.column("_rowaddr"), 32)
    removed: list[int] = []
    updated: list[FragmentMetadata] = []
    for item in pc.value_counts(fragment_ids).to_pylist():
        fragment = dataset.get_fragment(int(item["values"]))
        if fragment is None:
            continue
        if item["counts"] >= fragment.count_rows():
            removed.append(fragment.fragment_id)
            continue
        metadata = fragment.delete(partition_filter)
        if metadata is None:
            removed.append(fragment.fragment_id)
        else:
            updated.append(metadata)
    return removed, updated


def _commit(
    uri: str,
    options: dict | None,
    partition: Partition,
    staged: list[FragmentMetadata],
    lease,
    run_id: str,
    digest: str,
) -> tuple[lance.LanceDataset, int]:
    """One commit of the staged files replacing the partition's rows, rebased on conflicts."""
    properties = {"dagster_run_id": run_id, "partition": partition.key, "digest": digest}
    error: Exception | None = None
    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        dataset = lance.dataset(uri, storage_options=options)
        removed, updated = _partition_deletions(dataset, partition.filter)
        if not (removed or updated or staged):
            return dataset, attempt  # nothing to delete, nothing to add: no version needed
        operation = lance.LanceOperation.Update(
            removed_fragment_ids=removed, updated_fragments=updated, new_fragments=staged
        )
        transaction = lance.Transaction(
            read_version=dataset.version, operation=operation, transaction_properties=properties
        )
        lease.assert_held()
        try:
            committed = lance.LanceDataset.commit(
                uri, transaction, read_version=dataset.version, storage_options=options
            )
            return committed, attempt
        except CommitConflictError as conflict:  # another partition's commit touched a fragment
            error = conflict
            log.info(
                "%s %s: commit attempt %d preempted (%s); rebasing",
                partition.dataset,
                partition.key,
                attempt,
                conflict,
            )
            time.sleep(random.uniform(0, min(2.0, 0.05 * 2**attempt)))
    raise ConcurrentPartitionWriteError(
        f"{uri}: concurrent commits preempted the commit of {partition.noun} {partition.key} "
        f"{COMMIT_ATTEMPTS} times, each rebased on the newer version; nothing was committed. "
        f"Re-run the {partition.noun}. Lance: {error}"
    )
