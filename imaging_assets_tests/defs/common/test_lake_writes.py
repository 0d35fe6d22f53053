"""write_plate: a plate's commit that another plate's schema change preempts is redone."""

from __future__ import annotations

import lance
import pyarrow as pa
import pytest

from imaging_assets.core.lance_tables import RemovalRefusedError
from imaging_assets.defs.common.lake_writes import write_plate
from imaging_assets.defs.common.stores import LakeResource

SCHEMA = pa.schema([("key", pa.string()), ("source", pa.string()), ("plate", pa.string())])


def _batches(plate: str, n: int, schema: pa.Schema = SCHEMA, **extra) -> list[pa.RecordBatch]:
    rows = [{"key": f"{plate}-{i}", "source": "s", "plate": plate, **extra} for i in range(n)]
    return pa.Table.from_pylist(rows, schema=schema).to_batches()


def _write(lake, plate: str, batches, schema: pa.Schema = SCHEMA, **kwargs):
    return write_plate(
        lake, "things", f"s__{plate}", "run-1", batches, schema, key="key", evolve=True, **kwargs
    )


def _preempted_once(lake, plate: str, n: int, readings: list[int]):
    """The plate's stream; its first reading lets another plate add a column meanwhile."""

    def batches():
        readings.append(len(readings) + 1)
        if len(readings) == 1:
            wider = SCHEMA.append(pa.field("extra", pa.int64()))
            _write(lake, "OTHER", _batches("OTHER", 1, wider, extra=3), wider)
        yield from _batches(plate, n)

    return batches


def test_a_preempted_plate_is_written_once_its_stream_is_read_again(tmp_path):
    lake = LakeResource(root=str(tmp_path / "lake"))
    _write(lake, "P0", _batches("P0", 2))
    readings: list[int] = []
    result = _write(lake, "P1", _preempted_once(lake, "P1", 4, readings))
    assert readings == [1, 2] and result.rows_written == 4
    keys = lance.dataset(lake.dataset_uri("things")).to_table()["key"].to_pylist()
    assert sorted(keys) == ["OTHER-0", "P0-0", "P0-1", "P1-0", "P1-1", "P1-2", "P1-3"]


def test_a_replayable_stream_still_meets_the_rerun_guard(tmp_path):
    """The guard judges each attempt before its commit: a re-run that drops a row is refused
    with that row named, before any conflict can arise, and nothing is written."""
    lake = LakeResource(root=str(tmp_path / "lake"))
    _write(lake, "P1", _batches("P1", 4))
    readings: list[int] = []
    with pytest.raises(RemovalRefusedError, match="remove 1 of the plate's 4.*P1-3"):
        _write(lake, "P1", _preempted_once(lake, "P1", 3, readings))
    assert readings == [1]
    assert lance.dataset(lake.dataset_uri("things")).count_rows("plate = 'P1'") == 4
