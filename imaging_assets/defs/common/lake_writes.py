"""How every per-plate asset writes its Lance dataset: one commit per plate, under a lease, and
never a silent removal of rows an earlier run wrote."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pyarrow as pa
from dagster import Config, DagsterInstance, MetadataValue
from pydantic import Field

from imaging_assets.core import lance_tables
from imaging_assets.core.lance_tables import RemovalRefusedError
from imaging_assets.core.lease import RunAlive, partition_lease
from imaging_assets.defs.common.catalog import table_catalog
from imaging_assets.defs.common.stores import LakeResource
from imaging_assets.jump.keys import parse_plate_partition_key

KEYS_KEPT_FOR_EXAMPLES = 200_000  # above this many rows a refusal gives counts, not example keys


class RerunGuardConfig(Config):
    """What a re-run of a partition (plate, specimen, dataset) may remove of what an earlier run
    wrote."""

    max_removed_fraction: float = Field(
        default=0.0,
        ge=0.0,
        le=1.0,
        description=(
            "Share of the partition's existing rows that a re-run may delete without writing "
            "them again (0: none, the default; 1: any). A refusal names what would be removed."
        ),
    )


def plate_filter(partition_key: str) -> str:
    source, plate = parse_plate_partition_key(partition_key)
    return lance_tables.partition_filter_for(source, plate)


def run_alive_in(instance: DagsterInstance) -> RunAlive:
    """Whether a run is still in progress, as this instance knows it (None: another instance)."""

    def alive(run_id: str) -> bool | None:
        run = instance.get_run_by_id(run_id)
        return None if run is None else not run.is_finished

    return alive


def _keys_seen(
    batches: Iterable[pa.RecordBatch], key: str, seen: set[str] | None
) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        if seen is not None:
            seen.update(batch.column(key).to_pylist())
        yield batch


def _watched(batches: lance_tables.BatchSource, key: str, seen: set[str] | None):
    """The stream with its keys noted; a replayable source stays replayable (each reading
    starts the noting afresh)."""
    if not callable(batches):
        return _keys_seen(batches, key, seen)

    def replay() -> Iterator[pa.RecordBatch]:
        if seen is not None:
            seen.clear()
        return _keys_seen(batches(), key, seen)

    return replay


def _refusal(
    dataset: str,
    partition_key: str,
    removed: int,
    existing: int,
    examples: list[str],
    config_hint: str,
) -> RemovalRefusedError:
    shown = f" (e.g. {', '.join(examples[:5])})" if examples else ""
    return RemovalRefusedError(
        f"{dataset} {partition_key}: this run would remove {removed} of the plate's {existing} "
        f"existing rows that it does not write again{shown}; nothing was committed. This is "
        "usually an upstream table that lost rows (e.g. well.csv lost the plate's wells) or "
        f"sites that failed this time. To allow it, re-run with {config_hint}."
    )


def write_plate(
    lake: LakeResource,
    dataset: str,
    partition_key: str,
    run_id: str,
    batches: lance_tables.BatchSource,
    schema: pa.Schema,
    *,
    key: str,
    evolve: bool = False,
    index_key: bool = False,
    run_alive: RunAlive | None = None,
    max_removed_fraction: float | None = 0.0,
    config_hint: str = "config max_removed_fraction: 1.0",
) -> lance_tables.CommitResult:
    """Replace the plate's rows of `<lake>/<dataset>.lance` with `batches` in one commit, then
    (with `index_key`) keep a BTREE index on the key for fast lookups by site or cell.

    The plate's lease is held throughout and checked just before the commit. A commit that would
    delete more than `max_removed_fraction` of the plate's existing rows is refused (None: no
    limit), so a shrunken upstream table never silently empties a plate. Pass `batches` as a
    function returning the stream when reading it again is cheap: a commit that another plate's
    concurrent commit preempted is then redone instead of failing the plate.
    """
    uri = lake.dataset_uri(dataset)
    options = lake.storage_options()
    partition_filter = plate_filter(partition_key)
    with partition_lease(
        lake.store(), dataset, partition_key, run_id, run_alive=run_alive
    ) as lease:
        current = lance_tables.open_dataset(uri, options)
        existing = 0 if current is None else current.count_rows(filter=partition_filter)
        allowed = lance_tables.allowed_removals(existing, max_removed_fraction)
        seen = set() if allowed is not None and 0 < existing <= KEYS_KEPT_FOR_EXAMPLES else None

        def before_commit(preview: lance_tables.CommitResult) -> None:
            lease.assert_held()
            if allowed is not None and preview.rows_deleted > allowed:
                examples = _removed_examples(current, key, partition_filter, seen)
                raise _refusal(
                    dataset, partition_key, preview.rows_deleted, existing, examples, config_hint
                )

        result = lance_tables.replace_partition(
            uri,
            _watched(batches, key, seen),
            schema,
            key=key,
            partition_filter=partition_filter,
            storage_options=options,
            properties={"dagster_run_id": run_id, "partition": partition_key},
            evolve=evolve,
            before_commit=before_commit,
        )
    if index_key:
        lance_tables.ensure_key_index(uri, key, options)
    return result


def _removed_examples(current, key: str, partition_filter: str, seen: set[str] | None) -> list[str]:
    if current is None or seen is None:
        return []
    keys = current.to_table(columns=[key], filter=partition_filter)[key].to_pylist()
    return sorted(k for k in keys if k not in seen)[:5]


def commit_metadata(
    uri: str,
    commit: lance_tables.CommitResult,
    rows: int,
    seconds: float,
    unit: str,
    schema: pa.Schema | None = None,
) -> dict:
    """What every Lance-writing asset reports: where, which version, how many (the plate's rows
    as Dagster's row count, the dataset's total beside it), how fast, and the columns."""
    return {
        **(table_catalog(schema, rows) if schema is not None else {"dagster/row_count": rows}),
        "dataset_rows_total": commit.total_rows,
        "dataset_uri": MetadataValue.path(uri),
        "dataset_version": commit.version,
        "rows": rows,
        "rows_removed": commit.rows_deleted,
        f"{unit}_per_second": round(rows / seconds, 1) if seconds > 0 else 0.0,
    }
