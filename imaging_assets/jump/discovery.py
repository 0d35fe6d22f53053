"""Finding batches, plates and their load_data files in a source store, by delimiter listings.

Costs stay proportional to what is asked for: one listing per source for its batches, one per batch
for its plates or files; never a listing of the whole bucket.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from imaging_assets.core.stores import ObjectStore
from imaging_assets.jump import layout
from imaging_assets.jump.keys import key_part_problem, plate_partition_key

log = logging.getLogger(__name__)


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


def list_batches_any_format(store: ObjectStore, source: str) -> list[str]:
    """Batches with load data in either format (current CSV or older parquet): two listings."""
    found = set(list_batches(store, source))
    found.update(
        _last_segment(p) for p in store.list_prefixes(f"{source}/{layout.LOAD_DATA_ORIG_DIR}/")
    )
    return sorted(found)


def list_plates_any_format(store: ObjectStore, source: str, batch: str) -> list[str]:
    """Plates of a batch with load data in either format: two listings."""
    found = set(list_plates(store, source, batch))
    found.update(
        _last_segment(p)
        for p in store.list_prefixes(f"{source}/{layout.LOAD_DATA_ORIG_DIR}/{batch}/")
    )
    return sorted(found)


@dataclass(frozen=True)
class FoundPlate:
    source: str
    batch: str
    plate: str

    @property
    def partition_key(self) -> str:
        return plate_partition_key(self.source, self.plate)


@dataclass
class ScanCursor:
    """What a scan remembers between ticks: batches already seen, and batches still watched.

    A batch is watched for `watch_ticks` ticks after it appears or after it last grew, so a batch
    that is still uploading is re-listed, while settled batches cost nothing. Plates already
    registered as partitions are never proposed again, so the instance is the truth about plates.
    """

    seen_batches: dict[str, list[str]] = field(default_factory=dict)
    watched: dict[str, int] = field(default_factory=dict)  # "source/batch" -> ticks left
    ticks: int = 0

    def to_json(self) -> str:
        return json.dumps(
            {"seen": self.seen_batches, "watched": self.watched, "ticks": self.ticks},
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str | None) -> ScanCursor:
        if not text:
            return cls()
        data = json.loads(text)
        return cls(
            seen_batches=data.get("seen", {}),
            watched=data.get("watched", {}),
            ticks=int(data.get("ticks", 0)),
        )


def _usable(source: str, batch: str, plate: str) -> bool:
    """A folder whose name cannot be a key part is skipped with a warning, never a failed tick."""
    problem = key_part_problem(source) or key_part_problem(plate)
    if problem:
        log.warning(
            "skipping %s/%s/%s: its name %s; rename it to process it", source, batch, plate, problem
        )
    return problem is None


def scan_for_new_plates(
    store: ObjectStore,
    cursor: ScanCursor,
    known_partitions: set[str],
    *,
    max_new: int,
    watch_ticks: int = 3,
    full_scan_every: int = 0,
) -> tuple[list[FoundPlate], ScanCursor]:
    """New plates (not in `known_partitions`) under every source, at most `max_new` per call.

    Requests per call: 1 for the sources, 2 per source for its batches, 2 per watched batch for its
    plates; a batch whose plates did not all fit under `max_new` stays watched for the next call.
    Every `full_scan_every` calls (0: never) every batch is re-listed once, to catch a plate that
    lands late in a batch that had settled.
    """
    seen = {source: list(batches) for source, batches in cursor.seen_batches.items()}
    watched = dict(cursor.watched)
    ticks = cursor.ticks + 1
    full_scan = bool(full_scan_every) and ticks % full_scan_every == 0
    for source in list_sources(store):
        known = set(seen.get(source, []))
        batches = list_batches_any_format(store, source)
        for batch in batches:
            if batch not in known:
                watched[f"{source}/{batch}"] = watch_ticks
            elif full_scan:
                watched.setdefault(f"{source}/{batch}", 1)
        seen[source] = batches

    found: list[FoundPlate] = []
    next_watched: dict[str, int] = {}
    for source_batch in sorted(watched):
        source, batch = source_batch.split("/", 1)
        new = [
            FoundPlate(source, batch, plate)
            for plate in list_plates_any_format(store, source, batch)
            if _usable(source, batch, plate)
            and plate_partition_key(source, plate) not in known_partitions
        ]
        room = max_new - len(found)
        found.extend(new[: max(room, 0)])
        if len(new) > room:
            next_watched[source_batch] = watch_ticks  # the rest next time
        elif new:
            next_watched[source_batch] = watch_ticks  # still growing: keep watching
        elif watched[source_batch] > 1:
            next_watched[source_batch] = watched[source_batch] - 1
    return found, ScanCursor(seen_batches=seen, watched=next_watched, ticks=ticks)
