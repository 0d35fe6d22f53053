"""What the per-plate checks of site_images verify, as pure functions of the lake's rows.

Each returns an Outcome (passed + facts for the check's metadata); the Dagster wing turns them into
partitioned asset check results (defs/jump/images.py), one per plate.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import lance
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from imaging_assets.core.errors import MissingObjectError
from imaging_assets.jump.quality import PlateFlags, reason_counts
from imaging_assets.jump.schemas import channel_prefix

EXAMPLES = 10  # keys or URIs named in a check's metadata at most


@dataclass(frozen=True)
class Outcome:
    passed: bool
    facts: dict = field(default_factory=dict)


def rows_match_sites(keys: pa.Array, sampled: Iterable[str], failed: Iterable[str]) -> Outcome:
    """The plate's rows are exactly its sampled sites less those recorded as failed."""
    expected = set(sampled) - set(failed)
    written = set(keys.to_pylist())
    missing, extra = sorted(expected - written), sorted(written - expected)
    return Outcome(
        len(keys) == len(expected) and not missing and not extra,
        {
            "rows": len(keys),
            "expected": len(expected),
            "sampled_sites": len(set(sampled)),
            "failed_sites": len(set(failed)),
            "missing_site_keys": missing[:EXAMPLES],
            "unexpected_site_keys": extra[:EXAMPLES],
        },
    )


def unique_keys(keys: pa.Array) -> Outcome:
    distinct = pc.count_distinct(keys).as_py() if len(keys) else 0
    return Outcome(distinct == len(keys), {"rows": len(keys), "distinct_site_keys": distinct})


def md5_sample(
    dataset: lance.LanceDataset,
    keys: Sequence[str],
    channels: Sequence[str],
    read: Callable[[str], bytes],
    sites: int = 3,
) -> Outcome:
    """Re-read a sample of the plate's raw objects from where they were read and compare their
    md5 with the stored one: `sites` sites spread over the plate (in key order), one channel each,
    taking the channels in turn."""
    ordered = sorted(keys)
    if not ordered or not channels:
        return Outcome(True, {"sites_checked": 0, "mismatched_uris": []})
    picks = sorted({int(i) for i in np.linspace(0, len(ordered) - 1, min(sites, len(ordered)))})
    sample = {ordered[i]: channels[n % len(channels)] for n, i in enumerate(picks)}
    columns = ["site_key"]
    for c in {channel_prefix(ch) for ch in sample.values()}:
        columns += [f"{c}_raw_uri", f"{c}_read_uri", f"{c}_raw_md5"]
    rows = dataset.to_table(
        columns=columns, filter=pc.field("site_key").isin(list(sample))
    ).to_pylist()
    mismatched: list[str] = []
    checked: list[str] = []
    for row in rows:
        c = channel_prefix(sample[row["site_key"]])
        where = row[f"{c}_read_uri"] or row[f"{c}_raw_uri"]
        checked.append(where)
        try:
            fresh = hashlib.md5(read(where)).hexdigest()
        except MissingObjectError:
            fresh = None
        if fresh != row[f"{c}_raw_md5"]:
            mismatched.append(where)
    return Outcome(
        not mismatched and len(rows) == len(sample),
        {"sites_checked": len(rows), "uris_checked": checked, "mismatched_uris": mismatched},
    )


def finite_values(table: pa.Table) -> Outcome:
    """No NaN or infinity in the table's float columns (nulls, features not computed, are fine)."""
    counts = {}
    for name in table.column_names:
        column = table.column(name)
        if pa.types.is_floating(column.type):
            bad = pc.sum(pc.invert(pc.is_finite(column))).as_py() or 0
            if bad:
                counts[name] = bad
    return Outcome(
        not counts,
        {"rows": table.num_rows, "columns_checked": table.num_columns, "non_finite": counts},
    )


def flagged_share(flags: PlateFlags, limit: float) -> Outcome:
    """The share of the plate's sites that image QC flagged is at most `limit`."""
    share = flags.flagged / flags.sites if flags.sites else 0.0
    flagged = [k for k, r in zip(flags.site_keys, flags.reasons, strict=True) if r]
    return Outcome(
        share <= limit,
        {
            "sites": flags.sites,
            "flagged": flags.flagged,
            "flagged_share": round(share, 4),
            "limit": limit,
            "reasons": reason_counts(flags.reasons),
            "flagged_site_keys": flagged[:EXAMPLES],
        },
    )


__all__ = [
    "Outcome",
    "finite_values",
    "flagged_share",
    "md5_sample",
    "rows_match_sites",
    "unique_keys",
]
