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
    SITE_QC,
    WELL_PROFILES,
    plate_filter,
)
from imaging_assets.jump.quality import reason_counts

PLATE_DATASETS = (SITE_IMAGES, WELL_PROFILES, CELL_PROFILES, CELL_CROPS)


class UnknownPlateError(LookupError):
    """No run has written this plate to the lake."""


@dataclass(frozen=True)
class PlateStatus:
    partition_key: str
    rows: dict[str, int]
    records: dict[str, PartitionRecord] = field(default_factory=dict)
    failures_by_kind: dict[str, int] = field(default_factory=dict)
    qc_judged: int = 0  # sites with a QC verdict in site_qc
    qc_flagged: int = 0
    qc_reasons: dict[str, int] = field(default_factory=dict)  # kind of reason -> sites

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
        if self.qc_judged:
            reasons = "; ".join(f"{kind}: {n}" for kind, n in self.qc_reasons.items())
            lines.append(
                f"  image QC       {self.qc_flagged:>10,} of {self.qc_judged:,} sites flagged"
                + (f" ({reasons})" if reasons else "")
            )
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
    judged, flagged, reasons = _qc_verdicts(lake, where)
    return PlateStatus(partition_key, rows, records, failures, judged, flagged, reasons)


def _qc_verdicts(lake: Lake, where: str) -> tuple[int, int, dict[str, int]]:
    """(sites judged, sites flagged, kinds of reason) from site_qc (jump/quality.py)."""
    dataset = open_dataset(lake.uri(SITE_QC), lake.storage_options)
    if dataset is None:
        return 0, 0, {}
    verdicts = dataset.to_table(columns=["qc_pass", "qc_reasons"], filter=where)
    passed = verdicts["qc_pass"].to_pylist()
    flagged = [
        r or []
        for r, ok in zip(verdicts["qc_reasons"].to_pylist(), passed, strict=True)
        if ok is False
    ]
    return verdicts.num_rows, len(flagged), reason_counts(flagged)
