"""Which plate partitions a backfill should run next: pure selection, no Dagster.

Fair to every plate: plates never tried (missing) come first, then stale ones (written by another
code version), and only then plates that keep failing, each after a back-off that doubles with
every consecutive failure (capped). JUMP has known corrupt TIFFs: a plate that always fails must
not be requested on every tick, and 25 of them must never crowd out a new plate.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from imaging_assets.jump.keys import parse_plate_partition_key


@dataclass(frozen=True)
class PlateHistory:
    """A plate's recent runs: failures since its last success, the last one's time and error."""

    consecutive_failures: int = 0
    last_failure_at: float | None = None  # seconds since the epoch
    last_error: str | None = None


@dataclass(frozen=True)
class Backoff:
    """Wait base_s after the first failure, twice as long after each further one, at most cap_s."""

    base_s: float = 3600.0
    cap_s: float = 7 * 86400.0

    def wait_s(self, failures: int) -> float:
        if failures <= 0:
            return 0.0
        return min(self.cap_s, self.base_s * 2 ** (failures - 1))


def plates_to_run(
    partitions: Iterable[str],
    latest_code_version: Mapping[str, str | None],
    current_code_version: str,
    in_flight: set[str],
    limit: int,
    history: Mapping[str, PlateHistory] | None = None,
    now: float = 0.0,
    backoff: Backoff = Backoff(),
) -> tuple[list[str], dict[str, int]]:
    """Missing plates, then stale ones, then failing ones whose back-off is over (longest waiting
    first), at most `limit`. Plates with a run queued or in progress are skipped, so a tick never
    doubles work already requested. Returns the chosen keys and counts per state."""
    history = history or {}
    missing: list[str] = []
    stale: list[str] = []
    due: list[tuple[float, str]] = []
    counts = dict.fromkeys(
        ("missing", "stale", "retry_due", "backing_off", "in_flight", "current"), 0
    )
    for key in sorted(set(partitions)):
        if key in in_flight:
            counts["in_flight"] += 1
            continue
        version = latest_code_version.get(key)
        if version == current_code_version:
            counts["current"] += 1
            continue
        past = history.get(key, PlateHistory())
        if past.consecutive_failures:
            ready_at = (past.last_failure_at or 0.0) + backoff.wait_s(past.consecutive_failures)
            if ready_at > now:
                counts["backing_off"] += 1
            else:
                counts["retry_due"] += 1
                due.append((past.last_failure_at or 0.0, key))
        elif version is None:
            counts["missing"] += 1
            missing.append(key)
        else:
            counts["stale"] += 1
            stale.append(key)
    retries = [key for _, key in sorted(due)]
    return (missing + stale + retries)[: max(limit, 0)], counts


def needing_attention(
    history: Mapping[str, PlateHistory], min_failures: int = 2
) -> list[tuple[str, PlateHistory]]:
    """Plates that failed at least `min_failures` times in a row, most failures first: what a
    person should look at (their last error says why)."""
    failing = [
        (key, past) for key, past in history.items() if past.consecutive_failures >= min_failures
    ]
    return sorted(failing, key=lambda item: (-item[1].consecutive_failures, item[0]))


def source_of(key: str) -> str:
    """The source of a plate partition key ("<source>__<plate>")."""
    return parse_plate_partition_key(key)[0]


def plate_batches(keys: list[str], per_run: int) -> list[list[str]]:
    """The plates in batches of at most `per_run`, each of one source (the run queue limits
    runs per source), in the order given: the first batch holds the most urgent plates."""
    if per_run < 1:
        raise ValueError(f"plates per run must be at least 1, not {per_run}")
    open_batches: dict[str, list[str]] = {}
    batches: list[list[str]] = []
    for key in keys:
        batch = open_batches.get(source_of(key))
        if batch is None or len(batch) >= per_run:
            batch = open_batches[source_of(key)] = []
            batches.append(batch)
        batch.append(key)
    return batches
