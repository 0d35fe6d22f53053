"""What the lake holds for one plate: rows per table, recorded failures, the last write of each.

The partition records that every write leaves (core/partition_write.py) tell apart a plate that
was never processed (an error for the CLI: a typo must not look like an empty plate) from one that
was processed and sampled 0 sites (a DMSO plate under the default quotas).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from imaging_assets.core.lake import Lake
from imaging_assets.core.lance_tables import open_dataset
from imaging_assets.core.partition_write import PartitionRecord, read_record
from imaging_assets.jump.datasets import (
    CELL_CROPS,
    CELL_PROFILES,
    FAILED_IMAGES,
    SITE_IMAGES,
    WELL_PROFILES,
    plate_filter,
)

PLATE_DATASETS = (SITE_IMAGES, WELL_PROFILES, CELL_PROFILES, CELL_CROPS)


class UnknownPlateError(LookupError):
    """No run has written this plate to the lake."""


@dataclass(frozen=True)
class PlateStatus:
    partition_key: str
    rows: dict[str, int]
    records: dict[str, PartitionRecord] = field(default_factory=dict)
    failures_by_kind: dict[str, int] = field(default_factory=dict)

    @property
    def state(self) -> str:
        images = self.records.get(SITE_IMAGES)
        if images is None and not self.rows.get(SITE_IMAGES):
            return "images not processed yet"
        if images is not None and images.rows == 0:
            return "processed, 0 sites sampled (the sampling quotas select no site of this plate)"
        return "processed"

    def render(self) -> str:
        lines = [f"plate {self.partition_key}: {self.state}"]
        for name, n in self.rows.items():
            record = self.records.get(name)
            last = f"  (last written {record.written_at} by run {record.run_id})" if record else ""
            lines.append(f"  {name:<14} {n:>10,} rows{last}")
        failed = sum(self.failures_by_kind.values())
        kinds = ", ".join(f"{k}: {n}" for k, n in sorted(self.failures_by_kind.items()))
        lines.append(f"  failed images  {failed:>10,}" + (f" ({kinds})" if kinds else ""))
        return "\n".join(lines)


def plate_status(lake: Lake, partition_key: str) -> PlateStatus:
    """Rows and last write per plate dataset, failures by kind; UnknownPlateError when no run
    has ever written the plate."""
    where = plate_filter(partition_key)
    rows, records = {}, {}
    for name in PLATE_DATASETS:
        dataset = open_dataset(lake.uri(name), lake.storage_options)
        rows[name] = 0 if dataset is None else dataset.count_rows(filter=where)
        record = read_record(lake, name, partition_key)
        if record is not None:
            records[name] = record
    failures: dict[str, int] = {}
    failed = open_dataset(lake.uri(FAILED_IMAGES), lake.storage_options)
    if failed is not None:
        kinds = failed.to_table(columns=["error_kind"], filter=where)["error_kind"].to_pylist()
        failures = dict(Counter(kinds))
    if not records and not any(rows.values()) and not failures:
        raise UnknownPlateError(
            f"plate {partition_key} is not in the lake at {lake.root}: no run has written it "
            "(check the partition key, <source>__<plate>, or run the plate first)"
        )
    return PlateStatus(partition_key, rows, records, failures)
