"""Lake maintenance removes what killed or refused writes staged, never while a plate is written."""

from __future__ import annotations

import os
from datetime import timedelta

import lance
import pyarrow as pa
import pytest
from lance.fragment import write_fragments

from imaging_assets.cli.main import main
from imaging_assets.core.lake import Lake
from imaging_assets.core.lease import Lease, PartitionBusyError
from imaging_assets.core.maintenance import clean_dataset
from imaging_assets.core.partition_write import Partition, write_partition
from imaging_assets.core.stores import LocalStore
from imaging_assets_tests.lakes import partition_filter_for

SCHEMA = pa.schema([("key", pa.string()), ("source", pa.string()), ("plate", pa.string())])


def _rows(plate: str, n: int):
    yield pa.RecordBatch.from_pylist(
        [{"key": f"{plate}-{i}", "source": "s", "plate": plate} for i in range(n)], schema=SCHEMA
    )


def _data_files(uri: str) -> int:
    return sum(len(files) for _, _, files in os.walk(os.path.join(uri, "data")))


def _lake_with_a_refused_write(tmp_path) -> str:
    """A plate committed, then a write that staged its data files and died before its commit
    (a kill between staging and committing: nothing references those files)."""
    uri = str(tmp_path / "site_images.lance")
    lake = Lake.open(tmp_path)
    partition = Partition("site_images", "s__P1", partition_filter_for("s", "P1"), "key")
    write_partition(lake, partition, SCHEMA, _rows("P1", 3), run_id="run-1")
    write_fragments(pa.Table.from_batches(_rows("P1", 1)), uri, schema=SCHEMA)  # never committed
    return uri


def test_cleanup_removes_files_a_refused_write_staged_and_keeps_every_row(tmp_path):
    uri = _lake_with_a_refused_write(tmp_path)
    staged = _data_files(uri)
    assert staged == 2  # the committed plate and the refused write's orphan
    report = clean_dataset(
        LocalStore(tmp_path), "site_images", uri, None, older_than=timedelta(0), holder_id="m"
    )
    assert report.bytes_removed > 0
    assert _data_files(uri) == 1
    assert lance.dataset(uri).count_rows() == 3


def test_cleanup_refuses_while_a_plate_is_being_written(tmp_path):
    uri = _lake_with_a_refused_write(tmp_path)
    store = LocalStore(tmp_path)
    with (
        Lease(store, "site_images", "s__P1", "writer-run"),
        pytest.raises(PartitionBusyError, match="being written"),
    ):
        clean_dataset(store, "site_images", uri, None, older_than=timedelta(0), holder_id="m")
    assert _data_files(uri) == 2


def test_cli_lists_tables_and_cleans_them(tmp_path, capsys):
    uri = _lake_with_a_refused_write(tmp_path)
    assert main(["lake", "tables", "--lake", str(tmp_path)]) == 0
    listed = capsys.readouterr().out
    assert "site_images" in listed and " 3 " in listed
    assert main(["lake", "cleanup", "--lake", str(tmp_path), "--older-than-days", "0"]) == 0
    assert "site_images: removed" in capsys.readouterr().out
    assert _data_files(uri) == 1
