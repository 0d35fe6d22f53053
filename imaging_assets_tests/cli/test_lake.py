"""`imaging-assets lake ...` on the demo's lake as a user runs it: tables, one plate's state,
verify of every domain with its exit codes, and a lake copied elsewhere (relocation)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import lance
import pyarrow as pa
import pytest

from imaging_assets.core.lake import Lake
from imaging_assets.core.partition_write import write_partition
from imaging_assets.jump.datasets import FAILED_IMAGES, plate_partition
from imaging_assets.jump.schemas import failed_images_schema
from imaging_assets_tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.slow  # they share the session's demo lake
DMSO_PLATE = "source_4__BR00117036"
IMAGED_PLATE = "source_4__BR00117035"
FILE_UPLOAD = "DEMO-2024-05-03-08-00-00-0001"


def _cli(workdir: Path, *args: str, lake: Path | None = None) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(workdir), "IMAGING_ASSETS_HOME": str(workdir)}
    lake_args = ["--lake", str(lake or workdir / "lake")]
    return subprocess.run(
        [sys.executable, "-m", "imaging_assets.cli.main", *args, *lake_args],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_tables_lists_lance_and_parquet_tables(demo_lake):
    workdir, _ = demo_lake
    done = _cli(workdir, "lake", "tables")
    assert done.returncode == 0, done.stderr
    formats = {line.split()[0]: line.split()[1] for line in done.stdout.splitlines()[1:]}
    assert formats["site_images"] == "lance" and formats["load_data"] == "parquet", done.stdout
    assert formats["jump_plates"] == "parquet" and formats["zstack_slices"] == "lance"


def test_plate_states_and_an_unknown_plate(demo_lake):
    workdir, _ = demo_lake
    imaged = _cli(workdir, "lake", "plate", IMAGED_PLATE)
    assert imaged.returncode == 0 and f"plate {IMAGED_PLATE}: processed\n" in imaged.stdout
    assert "sites flagged" in imaged.stdout  # the image QC verdicts of site_qc
    dmso = _cli(workdir, "lake", "plate", DMSO_PLATE)
    assert dmso.returncode == 0, dmso.stderr
    assert "processed, 0 sites sampled" in dmso.stdout, dmso.stdout
    typo = _cli(workdir, "lake", "plate", "source_4__BR0011703")
    assert typo.returncode == 2 and typo.stdout == ""
    assert typo.stderr.strip().count("\n") == 0 and "source_4__BR0011703" in typo.stderr


@pytest.mark.parametrize("what", ["plates", "specimens", "datasets"])
def test_verify_passes_on_the_demo_and_refuses_an_unknown_key(demo_lake, what):
    workdir, _ = demo_lake
    done = _cli(workdir, "lake", "verify", what)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "checked, 0 differ" in done.stdout
    unknown = _cli(workdir, "lake", "verify", what, "no_such_key")
    assert unknown.returncode == 2 and "no_such_key" in unknown.stderr


def test_datasets_commands_name_an_unknown_id_in_one_line(demo_lake):
    workdir, _ = demo_lake
    for args in (
        ["datasets", "verify", "NOPE-2024-01-01-00-00-00-0001"],
        ["datasets", "get", "NOPE-2024-01-01-00-00-00-0001", str(workdir / "out")],
    ):
        done = _cli(workdir, *args)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "NOPE-2024-01-01-00-00-00-0001" in done.stderr
        assert "Traceback" not in done.stderr and done.stderr.strip().count("\n") == 0


def test_a_copied_lake_verifies_its_own_bytes_and_accepts_writes(demo_lake, tmp_path):
    workdir, _ = demo_lake
    copy, intact = tmp_path / "copy", tmp_path / "intact"
    shutil.copytree(workdir / "lake", copy)
    shutil.copytree(workdir / "lake", intact)
    stored = next((copy / "objects").rglob("*.csv"))
    stored.write_bytes(stored.read_bytes() + b"changed in the copy\n")

    changed = _cli(workdir, "lake", "verify", "datasets", lake=copy)
    assert changed.returncode == 1 and FILE_UPLOAD in changed.stdout, changed.stdout
    for lake in (workdir / "lake", intact):
        for what in ("datasets", "plates", "specimens"):
            done = _cli(workdir, "lake", "verify", what, lake=lake)
            assert done.returncode == 0, (lake, what, done.stdout, done.stderr)

    # the copy takes new writes where it is; the original is untouched by them
    original = workdir / "lake" / "failed_images.lance"
    before = lance.dataset(str(original)).version if original.exists() else None
    row = {f.name: None for f in failed_images_schema()} | {
        "failure_key": "x",
        "uri": "s3://bucket/x.tiff",
        "source": "source_9",
        "plate": "P",
        "error_kind": "missing",
    }
    written = write_partition(
        Lake.open(copy),
        plate_partition(FAILED_IMAGES, "source_9__P"),
        failed_images_schema(),
        [pa.RecordBatch.from_pylist([row], schema=failed_images_schema())],
        run_id="copy-run",
    )
    assert written.changed and written.uri.startswith(str(copy))
    assert lance.dataset(str(copy / "failed_images.lance")).count_rows("plate = 'P'") == 1
    assert (lance.dataset(str(original)).version if original.exists() else None) == before
