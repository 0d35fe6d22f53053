"""Lake maintenance: drop old Lance versions and the files killed or refused writes left behind.

A write killed mid-stream (SIGKILL, OOM) or vetoed before its commit (a refused removal, a lost
lease) stages data files that no version references. Lance removes them with
`cleanup_old_versions(delete_unverified=True)`, which is only safe while nobody writes the
dataset: so maintenance holds the dataset's `_maintenance` lease (writers check it after taking
their partition lease) and refuses to run while any partition lease has a live holder.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from datetime import timedelta

import pyarrow.parquet as pq

from imaging_assets.core import lance_tables
from imaging_assets.core.lease import MAINTENANCE, Lease, PartitionBusyError, live_holders
from imaging_assets.core.stores import LocalStore, ObjectStore

LANCE_SUFFIX = ".lance"


@dataclass(frozen=True)
class TableSummary:
    name: str
    uri: str
    rows: int
    version: int | None  # Lance version; None for Parquet tables (files replaced per partition)
    fragments: int  # Lance fragments, or Parquet files (one per partition)
    bytes_on_disk: int | None  # None on object stores (listing every object would cost requests)
    format: str = "lance"


@dataclass(frozen=True)
class CleanupReport:
    name: str
    versions_removed: int
    bytes_removed: int
    version: int


def lance_datasets(store: ObjectStore) -> list[str]:
    """Names of the Lance datasets at the lake root (`<name>.lance`)."""
    names = [p.rstrip("/").rsplit("/", 1)[-1] for p in store.list_prefixes("")]
    return sorted(n.removesuffix(LANCE_SUFFIX) for n in names if n.endswith(LANCE_SUFFIX))


def _local_size(path: str) -> int | None:
    if not os.path.isdir(path):
        return None
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def summarize(store: ObjectStore, uri_of, storage_options: dict | None) -> list[TableSummary]:
    """Rows, version, fragments and (locally) bytes of every Lance dataset in the lake."""
    summaries = []
    for name in lance_datasets(store):
        uri = uri_of(name)
        dataset = lance_tables.open_dataset(uri, storage_options)
        if dataset is None:
            continue
        summaries.append(
            TableSummary(
                name=name,
                uri=uri,
                rows=dataset.count_rows(),
                version=dataset.version,
                fragments=len(dataset.get_fragments()),
                bytes_on_disk=None if "://" in uri else _local_size(uri),
            )
        )
    return summaries


def clean_dataset(
    store: ObjectStore,
    name: str,
    uri: str,
    storage_options: dict | None,
    *,
    older_than: timedelta,
    holder_id: str,
    delete_unverified: bool = True,
) -> CleanupReport:
    """Remove versions older than `older_than` and (by default) unreferenced staged files.

    Raises PartitionBusyError while a writer holds a live lease on any partition of the dataset.
    """
    with Lease(store, name, MAINTENANCE, holder_id):
        writers = {p: h for p, h in live_holders(store, name).items() if p != MAINTENANCE}
        if writers:
            shown = ", ".join(
                f"{p} ({h.describe() if h else '?'})" for p, h in list(writers.items())[:5]
            )
            raise PartitionBusyError(
                f"{name}: {len(writers)} partition(s) are being written ({shown}); "
                "run maintenance when they finish"
            )
        dataset = lance_tables.open_dataset(uri, storage_options)
        if dataset is None:
            return CleanupReport(name, 0, 0, 0)
        stats = dataset.cleanup_old_versions(
            older_than=older_than,
            delete_unverified=delete_unverified,
            error_if_tagged_old_versions=False,
        )
        return CleanupReport(name, stats.old_versions, stats.bytes_removed, dataset.version)


def parquet_tables(store: ObjectStore) -> list[TableSummary]:
    """The Parquet tables the IO manager keeps (`<asset>/<partition>.parquet`): rows from each
    file's footer, files, and bytes (sizes come with the listing, locally and on S3)."""
    summaries = []
    for prefix in store.list_prefixes(""):
        name = prefix.rstrip("/").rsplit("/", 1)[-1]
        if name.startswith(("_", ".")) or name.endswith(LANCE_SUFFIX):
            continue
        keys = [k for k in store.list_keys(prefix) if k.endswith(".parquet")]
        if not keys:
            continue
        rows = size = 0
        for key in keys:
            if isinstance(store, LocalStore):  # the footer only
                path = store.path(key)
                size += path.stat().st_size
                rows += pq.read_metadata(path).num_rows
            else:
                data = store.read(key).data
                size += len(data)
                rows += pq.ParquetFile(io.BytesIO(data)).metadata.num_rows
        summaries.append(
            TableSummary(name, store.uri(prefix), rows, None, len(keys), size, format="parquet")
        )
    return summaries
