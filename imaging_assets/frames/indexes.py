"""Keep the scalar indexes of a frames-domain table present and current (see schema.INDEXES).

Unindexed rows are still scanned, so results are correct in between; an index commit that loses a
race with a write is skipped (it only makes reads faster), never an error.
"""

from __future__ import annotations

import lance

from imaging_assets.frames.schema import INDEXES


def ensure_indexes(
    uri: str,
    table: str,
    storage_options: dict | None = None,
    *,
    optimize_above: int = 0,
    compact_above_fragments: int | None = None,
) -> dict[str, str]:
    """Create the table's missing indexes, then fold unindexed rows in when more than
    `optimize_above` are not covered. With `compact_above_fragments`, a table of more fragments
    is compacted first (the datasets table gets one small fragment per row update). Returns what
    happened per column."""
    report: dict[str, str] = {}
    try:
        dataset = lance.dataset(uri, storage_options=storage_options)
    except (OSError, ValueError) as error:
        return {"*": f"skipped: {error}"}
    if dataset.count_rows() == 0:
        return {"*": "skipped: empty"}
    if (
        compact_above_fragments is not None
        and len(dataset.get_fragments()) > compact_above_fragments
    ):
        try:
            dataset.optimize.compact_files()
            dataset = lance.dataset(uri, storage_options=storage_options)
            report["compaction"] = "compacted"
        except (OSError, ValueError, RuntimeError) as error:  # a concurrent write won: later
            report["compaction"] = f"skipped: {type(error).__name__}: {error}"
    existing = {tuple(ix["fields"]): ix["name"] for ix in dataset.list_indices()}
    stale = []
    for column, kind in INDEXES[table]:
        if column not in dataset.schema.names:
            continue
        name = existing.get((column,))
        try:
            if name is None:
                dataset.create_scalar_index(column, kind)
                report[column] = f"created {kind}"
            elif dataset.stats.index_stats(name)["num_unindexed_rows"] > optimize_above:
                stale.append(name)
                report[column] = "optimized"
            else:
                report[column] = "current"
        except (OSError, ValueError, RuntimeError) as error:
            report[column] = f"skipped: {type(error).__name__}: {error}"
    if stale:
        try:
            dataset = lance.dataset(uri, storage_options=storage_options)
            dataset.optimize.optimize_indices(index_names=stale)
        except (OSError, ValueError, RuntimeError) as error:
            report["optimize"] = f"skipped: {type(error).__name__}: {error}"
    return report
