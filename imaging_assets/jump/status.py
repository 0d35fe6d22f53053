"""What the lake holds for one plate: processed sites, recorded failures, the run that wrote them."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow.compute as pc

from imaging_assets.core.lance_tables import open_dataset
from imaging_assets.jump.datasets import partition_filter_for

PLATE_DATASETS = ("site_images", "well_profiles", "cell_profiles", "cell_crops")


@dataclass(frozen=True)
class PlateStatus:
    partition_key: str
    rows: dict[str, int]
    failures_by_kind: dict[str, int] = field(default_factory=dict)
    last_run_id: str | None = None
    last_written_at: str | None = None

    def render(self) -> str:
        lines = [f"plate {self.partition_key}"]
        lines += [f"  {name:<14} {n:>10,} rows" for name, n in self.rows.items()]
        failed = sum(self.failures_by_kind.values())
        kinds = ", ".join(f"{k}: {n}" for k, n in sorted(self.failures_by_kind.items()))
        lines.append(f"  failed images  {failed:>10,}" + (f" ({kinds})" if kinds else ""))
        if self.last_run_id:
            lines.append(f"  last written   {self.last_written_at} by run {self.last_run_id}")
        else:
            lines.append("  not processed yet")
        return "\n".join(lines)


def plate_status(
    uri_of: Callable[[str], str], storage_options: dict | None, source: str, plate: str
) -> PlateStatus:
    """Row counts per plate dataset, failures by kind, and the latest site_images write."""
    where = partition_filter_for(source, plate)
    rows = {}
    for name in PLATE_DATASETS:
        dataset = open_dataset(uri_of(name), storage_options)
        rows[name] = 0 if dataset is None else dataset.count_rows(filter=where)
    failures: dict[str, int] = {}
    failed = open_dataset(uri_of("failed_images"), storage_options)
    if failed is not None:
        kinds = failed.to_table(columns=["error_kind"], filter=where)["error_kind"].to_pylist()
        failures = dict(Counter(kinds))
    last_run = last_at = None
    images = open_dataset(uri_of("site_images"), storage_options)
    if images is not None and rows["site_images"]:
        written = images.to_table(columns=["dagster_run_id", "written_at"], filter=where)
        latest = pc.index(written["written_at"], pc.max(written["written_at"])).as_py()
        last_run = written["dagster_run_id"][latest].as_py()
        last_at = str(written["written_at"][latest].as_py())
    return PlateStatus(f"{source}__{plate}", rows, failures, last_run, last_at)
