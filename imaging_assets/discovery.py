"""Finding batches, plates and their load_data files in a source store, by delimiter listings.

Costs stay proportional to what is asked for: one listing per source for its batches, one per batch
for its plates or files; never a listing of the whole bucket.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from imaging_assets import layout
from imaging_assets.resources.stores import ObjectStore


def _last_segment(prefix: str) -> str:
    return prefix.rstrip("/").rsplit("/", 1)[-1]


def list_sources(store: ObjectStore) -> list[str]:
    """Source folders under the root (source_1, source_4, ...)."""
    return [
        name
        for name in (_last_segment(p) for p in store.list_prefixes(""))
        if name.startswith("source_")
    ]


def list_batches(store: ObjectStore, source: str) -> list[str]:
    """Batches that have a load_data folder under a source."""
    return [_last_segment(p) for p in store.list_prefixes(layout.load_data_batches_prefix(source))]


def list_plates(store: ObjectStore, source: str, batch: str) -> list[str]:
    """Plates that have a load_data folder in a batch."""
    return [
        _last_segment(p) for p in store.list_prefixes(layout.load_data_plates_prefix(source, batch))
    ]


def load_data_keys(store: ObjectStore, source: str, batch: str) -> Iterator[str]:
    """Every load_data file (current CSV and older parquet) of a batch: two listings."""
    yield from store.list_keys(f"{source}/{layout.LOAD_DATA_DIR}/{batch}/")
    yield from store.list_keys(f"{source}/{layout.LOAD_DATA_ORIG_DIR}/{batch}/")


def load_data_keys_for(store: ObjectStore, source_batches: Iterable[tuple[str, str]]) -> list[str]:
    """load_data files of every (source, batch) given, each listed once."""
    keys: list[str] = []
    for source, batch in sorted(set(source_batches)):
        keys.extend(load_data_keys(store, source, batch))
    return keys
