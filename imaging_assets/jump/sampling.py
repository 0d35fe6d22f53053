"""Deterministic site sampling: which sites of a plate get processed.

A site's fate depends only on (seed, source, plate, well, site): sites are ranked within their
well by a keyed BLAKE2b hash and the first `quota` kept, so shuffled input, re-runs and parallel
runs all agree, and raising a quota only adds sites.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

DEFAULT_PLATE_TYPES = frozenset({"COMPOUND", "ORF", "CRISPR", "TARGET1", "TARGET2"})
# Wells without metadata ("unknown") are not processed by default: their perturbation is unknown.
DEFAULT_SITES_PER_ROLE = {"poscon": 4, "negcon": 3, "trt": 6, "empty": 0, "unknown": 0}
UNKNOWN_ROLE = "unknown"


@dataclass(frozen=True)
class SamplingQuotas:
    plate_types: frozenset[str] = DEFAULT_PLATE_TYPES
    sites_per_role: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_SITES_PER_ROLE))
    excluded_sources: frozenset[str] = frozenset()
    seed: int = 0

    def quota(self, role: str | None) -> int:
        return int(self.sites_per_role.get(role or UNKNOWN_ROLE, 0))


def site_rank(seed: int, source: str, plate: str, well: str, site: str) -> bytes:
    """The stable sort key of a site within its well."""
    text = "\x1f".join((str(seed), source, plate, well, site)).encode()
    return hashlib.blake2b(text, digest_size=8).digest()


def sample_sites(load_data: pa.Table, plate_type: str, quotas: SamplingQuotas) -> pa.Table:
    """The rows (every channel) of the chosen sites, sorted by site_key and channel."""
    if plate_type not in quotas.plate_types:
        return load_data.slice(0, 0)
    keep_source = pc.invert(
        pc.is_in(load_data["source"], pa.array(sorted(quotas.excluded_sources), pa.string()))
    )
    table = load_data.filter(keep_source)
    roles = (
        table["control_role"].to_pylist()
        if "control_role" in table.column_names
        else [None] * table.num_rows
    )
    has_metadata = (
        table["has_metadata"].to_pylist()
        if "has_metadata" in table.column_names
        else [True] * table.num_rows
    )
    sites: dict[str, tuple[str, str, bytes]] = {}  # site_key -> (well group, role, rank)
    for key, source, plate, well, site, role, known in zip(
        table["site_key"].to_pylist(),
        table["source"].to_pylist(),
        table["plate"].to_pylist(),
        table["well"].to_pylist(),
        table["site"].to_pylist(),
        roles,
        has_metadata,
        strict=True,
    ):
        if key not in sites:
            role = role if known and role else UNKNOWN_ROLE
            sites[key] = (
                f"{source}/{plate}/{well}",
                role,
                site_rank(quotas.seed, source, plate, well, site),
            )
    by_well: dict[str, list[tuple[bytes, str, str]]] = {}
    for key, (group, role, rank) in sites.items():
        by_well.setdefault(group, []).append((rank, key, role))
    chosen = []
    for members in by_well.values():
        members.sort()
        quota = quotas.quota(members[0][2])
        chosen.extend(key for _, key, _ in members[:quota])
    kept = table.filter(pc.is_in(table["site_key"], pa.array(sorted(chosen), pa.string())))
    return kept.sort_by([("site_key", "ascending"), ("channel", "ascending")])


def sampling_summary(table: pa.Table) -> dict[str, dict[str, int]]:
    """Sites and wells kept per control role."""
    if table.num_rows == 0:
        return {}
    roles = (
        pc.fill_null(table["control_role"], UNKNOWN_ROLE)
        if "control_role" in table.column_names
        else pa.array([UNKNOWN_ROLE] * table.num_rows)
    )
    frame = pa.table({"role": roles, "site_key": table["site_key"], "well": table["well"]})
    grouped = frame.group_by("role").aggregate(
        [("site_key", "count_distinct"), ("well", "count_distinct")]
    )
    return {
        row["role"]: {"sites": row["site_key_count_distinct"], "wells": row["well_count_distinct"]}
        for row in grouped.to_pylist()
    }
