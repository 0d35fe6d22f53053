"""Which plate partitions a backfill should run next: pure selection, no Dagster."""

from __future__ import annotations

from collections.abc import Iterable, Mapping


def plates_to_run(
    partitions: Iterable[str],
    latest_code_version: Mapping[str, str | None],
    current_code_version: str,
    in_flight: set[str],
    limit: int,
) -> tuple[list[str], dict[str, int]]:
    """Missing plates first, then stale ones (materialized by another code version), at most `limit`.

    Plates with a run queued or in progress are skipped, so a tick never doubles work already
    requested. Returns the chosen partition keys and counts (missing, stale, in_flight, current).
    """
    missing: list[str] = []
    stale: list[str] = []
    counts = {"missing": 0, "stale": 0, "in_flight": 0, "current": 0}
    for key in sorted(set(partitions)):
        if key in in_flight:
            counts["in_flight"] += 1
            continue
        version = latest_code_version.get(key)
        if version is None:
            missing.append(key)
            counts["missing"] += 1
        elif version != current_code_version:
            stale.append(key)
            counts["stale"] += 1
        else:
            counts["current"] += 1
    return (missing + stale)[: max(limit, 0)], counts
