"""What every row of every Lance table says about how it was made (shared by all domains).

Each table carries the package version that wrote it, the Dagster run and the time written, and
for the raw object it came from: where it is (canonical URI), where it was read, its size and its
md5 and/or sha256. `PROVENANCE_COLUMNS` names the run-level part; the raw-object part is named per
table (per channel for plates), so the contract test checks it table by table.
"""

from __future__ import annotations

from imaging_assets import __version__ as PACKAGE_VERSION

RUN_COLUMNS = ("package_version", "dagster_run_id")
WRITE_TIME_COLUMNS = ("written_at", "failed_at", "stored_at")  # when the row was written

__all__ = ["PACKAGE_VERSION", "RUN_COLUMNS", "WRITE_TIME_COLUMNS"]
