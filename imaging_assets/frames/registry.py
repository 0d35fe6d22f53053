"""The `datasets` table: registering manifest entries and recording what an ingest found.

Registration inserts only ids that are not registered yet (one commit); an id registered before
keeps its row (the manifest check has made sure its content did not change). An ingest updates
its dataset's row with the global metadata and the summary (one commit, that row only). Commits
of different datasets rebase onto each other; a lost race is retried.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from datetime import datetime

import pyarrow as pa
from lance.commit import CommitConflictError

from imaging_assets.core import lance_tables
from imaging_assets.core.lance_tables import quote
from imaging_assets.core.provenance import PACKAGE_VERSION
from imaging_assets.frames.manifest import ManifestEntry
from imaging_assets.frames.schema import (
    dataset_files_schema,
    datasets_schema,
    now_utc,  # noqa: F401 - the registry's clock
)

RETRIES = 6


def registered_contents(uri: str, storage_options: dict | None = None) -> dict[str, str]:
    """dataset_id -> content sha256 of every registered dataset."""
    dataset = lance_tables.open_dataset(uri, storage_options)
    if dataset is None:
        return {}
    table = dataset.to_table(columns=["dataset_id", "content_sha256"])
    return dict(
        zip(table["dataset_id"].to_pylist(), table["content_sha256"].to_pylist(), strict=True)
    )


def entry_row(entry: ManifestEntry, source_uri: str, run_id: str, at: datetime) -> dict:
    return {
        "dataset_id": entry.dataset_id,
        "project": entry.dataset.project,
        "acquired_at": entry.dataset.acquired_at,
        "serial": entry.dataset.serial,
        "microscope": entry.microscope or None,
        "description": entry.description,
        "parent_id": entry.parent_id,
        "upload_type": entry.upload_type,
        "format": entry.format or None,
        "source_uri": source_uri,
        "positions": ";".join(entry.positions) or None,
        "position_indices": list(entry.position_indices) or None,
        "content_sha256": entry.content_sha256(),
        "registered_at": at,
        "registered_run_id": run_id,
        "package_version": PACKAGE_VERSION,
        "ingested": False,
    }


def _retrying(action: Callable[[], object], what: str):
    for attempt in range(RETRIES):
        try:
            return action()
        except (CommitConflictError, lance_tables.ConcurrentPartitionWriteError, OSError) as error:
            if attempt == RETRIES - 1 or (
                isinstance(error, OSError) and "conflict" not in str(error).lower()
            ):
                raise
            time.sleep(0.05 * 2**attempt)
    raise AssertionError(what)


def register(
    uri: str,
    rows: Iterable[dict],
    storage_options: dict | None = None,
    run_id: str = "",
) -> int:
    """Insert rows whose dataset_id is not registered yet, in one commit; returns rows inserted."""
    schema = datasets_schema()
    table = pa.Table.from_pylist(list(rows), schema=schema)
    if table.num_rows == 0:
        lance_tables.ensure_dataset(uri, schema, storage_options)
        return 0

    def commit() -> int:
        dataset = lance_tables.ensure_dataset(uri, schema, storage_options)
        stats = dataset.merge_insert("dataset_id").when_not_matched_insert_all().execute(table)
        return int(stats.get("num_inserted_rows", 0))

    return _retrying(commit, f"register into {uri}")


def update_dataset(
    uri: str, dataset_id: str, values: dict, storage_options: dict | None = None
) -> None:
    """Set columns of one registered dataset's row, in one commit."""
    schema = datasets_schema()

    def commit() -> None:
        dataset = lance_tables.ensure_dataset(uri, schema, storage_options)
        rows = dataset.to_table(filter=f"dataset_id = {quote(dataset_id)}").to_pylist()
        if not rows:
            raise KeyError(f"dataset {dataset_id} is not registered in {uri}")
        row = rows[0]
        row.update(values)
        for key in ("global_meta", "summary"):
            if isinstance(row.get(key), dict):
                row[key] = json.dumps(row[key], default=str)
        table = pa.Table.from_pylist([row], schema=schema)
        dataset.merge_insert("dataset_id").when_matched_update_all().execute(table)

    _retrying(commit, f"update {dataset_id} in {uri}")


def record_file(uri: str, row: dict, storage_options: dict | None = None) -> None:
    """Upsert one dataset_files row (keyed by dataset_id), in one commit."""
    schema = dataset_files_schema()
    table = pa.Table.from_pylist([row], schema=schema)

    def commit() -> None:
        dataset = lance_tables.ensure_dataset(uri, schema, storage_options)
        dataset.merge_insert(
            "dataset_id"
        ).when_matched_update_all().when_not_matched_insert_all().execute(table)

    _retrying(commit, f"record file in {uri}")
