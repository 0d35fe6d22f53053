"""Lance datasets as the lake keeps them: created exactly once, schemas checked or evolved, key
indexes kept current. How a partition's rows are written is core/partition_write.py.

Measured facts this relies on (pylance 14, see DESIGN.md):
- a dataset created empty, with its schema, before partitions write avoids lost first writes, and
  its creation must be one commit without retries (see `create_once`);
- columns added later are metadata-only (null in existing rows).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import lance
import pyarrow as pa


class SchemaMismatchError(ValueError):
    """An existing dataset whose schema differs from what the writer produces."""


class RemovalRefusedError(RuntimeError):
    """A re-run would delete rows of a partition that it does not write again."""


def allowed_removals(existing: int, max_removed_fraction: float | None) -> int | None:
    """How many of a partition's `existing` rows a re-run may delete (None: any)."""
    if max_removed_fraction is None:
        return None
    return math.floor(max_removed_fraction * existing)


class UnreadableDatasetError(ValueError):
    """A dataset that exists but cannot be opened (a corrupt or truncated manifest, say)."""


class ConcurrentPartitionWriteError(RuntimeError):
    """A concurrent commit to the dataset preempted this one (nothing of it was committed)."""


def quote(value: str) -> str:
    """A SQL string literal for Lance filters."""
    return "'" + str(value).replace("'", "''") + "'"


def open_dataset(uri: str, storage_options: dict | None = None) -> lance.LanceDataset | None:
    """The dataset, or None when there is none at `uri` (other errors propagate)."""
    try:
        return lance.dataset(uri, storage_options=storage_options)
    except (FileNotFoundError, ValueError, OSError) as error:
        message = str(error).lower()
        if (
            isinstance(error, FileNotFoundError)
            or "not found" in message
            or "does not exist" in message
        ):
            return None
        raise UnreadableDatasetError(
            f"{uri}: the Lance dataset cannot be opened ({error}). Its latest manifest may be "
            "corrupt: list its versions under _versions/ and restore or check out an earlier "
            "one (lance.dataset(uri, version=N).restore()), or move the dataset aside."
        ) from error


def _check_schema(uri: str, existing: pa.Schema, wanted: pa.Schema) -> None:
    mine = {f.name: f.type for f in wanted}
    theirs = {f.name: f.type for f in existing}
    if mine == theirs:
        return
    differing = sorted(
        name for name in set(mine) | set(theirs) if mine.get(name) != theirs.get(name)
    )
    details = ", ".join(
        f"{n}: {theirs.get(n, 'absent')} in dataset vs {mine.get(n, 'absent')} written"
        for n in differing[:8]
    )
    raise SchemaMismatchError(f"{uri}: schema differs from the existing dataset ({details})")


def _evolve(uri: str, dataset: lance.LanceDataset, wanted: pa.Schema) -> lance.LanceDataset:
    """Add (all-null, metadata-only) the columns of `wanted` that the dataset lacks."""
    existing = {f.name: f.type for f in dataset.schema}
    clashing = [f for f in wanted if f.name in existing and existing[f.name] != f.type]
    if clashing:
        raise SchemaMismatchError(
            f"{uri}: column types differ from the existing dataset ("
            + ", ".join(
                f"{f.name}: {existing[f.name]} in dataset vs {f.type} written" for f in clashing[:8]
            )
            + ")"
        )
    new = [f for f in wanted if f.name not in existing]
    if new:
        dataset.add_columns(new)
    return dataset


ADDABLE = b"imaging_assets.addable"
"""Field metadata: a column that datasets written by older versions may lack; it is added (null)."""


def addable(field: pa.Field) -> pa.Field:
    """Mark a column as added in a later version: older datasets gain it (null) on their next write."""
    return field.with_metadata({**(field.metadata or {}), ADDABLE: b"true"})


def _add_addable_columns(
    dataset: lance.LanceDataset, wanted: pa.Schema, uri: str, storage_options: dict | None
) -> lance.LanceDataset:
    names = set(dataset.schema.names)
    missing = [f for f in wanted if f.name not in names and (f.metadata or {}).get(ADDABLE)]
    if not missing:
        return dataset
    dataset.add_columns([f.remove_metadata() for f in missing])
    return lance.dataset(uri, storage_options=storage_options)


def create_once(uri: str, schema: pa.Schema, storage_options: dict | None = None) -> bool:
    """Create the dataset empty with `schema` unless it exists; True when this call created it.

    Never `write_dataset(mode="create")` here: when several writers create a missing dataset at
    once, Lance retries the losers' creations as Overwrite commits, so they land as later
    versions (measured on SeaweedFS: 3 of 12 plate commits failed at 4 writers as "incompatible
    with concurrent transaction Overwrite", and one Overwrite after a plate's commit erased it).
    A creation committed with no retries is version 1 or nothing.
    """
    if open_dataset(uri, storage_options) is not None:
        return False
    try:
        lance.LanceDataset.commit(
            uri,
            lance.LanceOperation.Overwrite(schema, []),
            max_retries=0,
            storage_options=storage_options,
        )
        return True
    except Exception as error:  # another creator won version 1: fine, if the dataset is there
        if open_dataset(uri, storage_options) is None:
            raise error
        return False


def ensure_dataset(
    uri: str, schema: pa.Schema, storage_options: dict | None = None, *, evolve: bool = False
) -> lance.LanceDataset:
    """Open the dataset, or create it empty with `schema` (exactly once among concurrent writers).

    With `evolve`, columns this writer has that the dataset lacks are added as nulls and columns the
    dataset has that this writer lacks are written as nulls (profiles differ across sources);
    otherwise any difference is a SchemaMismatchError.
    """
    create_once(uri, schema, storage_options)
    dataset = lance.dataset(uri, storage_options=storage_options)
    if evolve:
        _evolve(uri, dataset, schema)
        return lance.dataset(uri, storage_options=storage_options)
    dataset = _add_addable_columns(dataset, schema, uri, storage_options)
    _check_schema(uri, dataset.schema, schema)
    return dataset


def align_batch(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """The batch with the schema's columns in order; columns it lacks become nulls."""
    names = set(batch.schema.names)
    arrays = [
        batch.column(f.name).cast(f.type) if f.name in names else pa.nulls(batch.num_rows, f.type)
        for f in schema
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


@dataclass(frozen=True)
class IndexReport:
    action: str  # "created", "optimized", "current" or "skipped"
    detail: str = ""


def ensure_key_index(
    uri: str,
    column: str,
    storage_options: dict | None = None,
    *,
    max_unindexed_rows: int = 20_000,
) -> IndexReport:
    """A BTREE index on the key column, so one site or cell is found in about a millisecond.

    Created on first use, then brought up to date when more than `max_unindexed_rows` rows are
    not covered (unindexed fragments are still scanned, so results stay correct in between). An
    index commit that loses a race with a concurrent write is skipped, never an error: the index
    only makes reads faster.
    """
    try:
        dataset = lance.dataset(uri, storage_options=storage_options)
        existing = [ix for ix in dataset.list_indices() if ix["fields"] == [column]]
        if not existing:
            if dataset.count_rows() == 0:
                return IndexReport("skipped", "empty dataset")
            dataset.create_scalar_index(column, "BTREE")
            return IndexReport("created")
        unindexed = dataset.stats.index_stats(existing[0]["name"])["num_unindexed_rows"]
        if unindexed > max_unindexed_rows:
            dataset.optimize.optimize_indices(index_names=[existing[0]["name"]])
            return IndexReport("optimized", f"{unindexed} rows added to the index")
        return IndexReport("current", f"{unindexed} rows not yet indexed")
    except (OSError, ValueError, RuntimeError) as error:
        return IndexReport("skipped", f"{type(error).__name__}: {error}")
