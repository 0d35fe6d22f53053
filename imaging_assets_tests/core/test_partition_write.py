"""The one partition-write protocol on real Lance datasets: unchanged re-runs, refusals, rebases."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import lance
import pyarrow as pa
import pytest

from imaging_assets.core.lake import Lake
from imaging_assets.core.lance_tables import RemovalRefusedError
from imaging_assets.core.lease import Lease
from imaging_assets.core.partition_write import (
    Partition,
    PartitionRecord,
    read_record,
    record_key,
    write_partition,
)
from imaging_assets_tests.lakes import partition_filter_for

SCHEMA = pa.schema(
    [
        ("key", pa.string()),
        ("source", pa.string()),
        ("plate", pa.string()),
        ("value", pa.int64()),
        ("dagster_run_id", pa.string()),
        ("written_at", pa.timestamp("us", tz="UTC")),
    ]
)


def _plate(plate: str) -> Partition:
    return Partition("things", f"s__{plate}", partition_filter_for("s", plate), "key", "plate")


def _batches(plate: str, n: int, value: int = 1, run: str = "run-1", start: int = 0):
    keys = [f"{plate}-{i}" for i in range(start, start + n)]
    table = pa.table(
        {
            "key": keys,
            "source": ["s"] * n,
            "plate": [plate] * n,
            "value": [value] * n,
            "dagster_run_id": [run] * n,
            "written_at": [dt.datetime.now(dt.UTC)] * n,
        },
        schema=SCHEMA,
    )
    return table.to_batches(max_chunksize=3)


def _write(lake: Lake, plate: str, n: int, value: int = 1, run: str = "run-1", **kwargs):
    return write_partition(
        lake, _plate(plate), SCHEMA, _batches(plate, n, value, run), run_id=run, **kwargs
    )


def _files(root: Path) -> set[Path]:
    return {p for p in (root / "things.lance").rglob("*") if p.is_file()}


@pytest.fixture()
def lake(tmp_path) -> Lake:
    return Lake.open(tmp_path / "lake")


def test_first_write_commits_and_records_the_partition(lake):
    result = _write(lake, "P1", 5)
    assert result.changed and result.rows == 5 and result.rows_before == 0
    dataset = lance.dataset(lake.uri("things"))
    assert dataset.count_rows() == 5 and result.version == dataset.version
    record = read_record(lake, "things", "s__P1")
    assert record.state == "committed" and record.rows == 5 and record.version == dataset.version
    properties = dataset.get_transactions(1)[0].transaction_properties
    assert properties["dagster_run_id"] == "run-1" and properties["partition"] == "s__P1"


def test_an_unchanged_rerun_makes_no_version_and_leaves_no_bytes(lake):
    _write(lake, "P1", 5)
    version = lance.dataset(lake.uri("things")).version
    files = _files(Path(lake.root))
    again = _write(lake, "P1", 5, run="run-2")  # same rows; only the run id and the time differ
    assert not again.changed and again.outcome == "unchanged"
    assert lance.dataset(lake.uri("things")).version == version == again.version
    assert _files(Path(lake.root)) == files


def test_changed_rows_replace_exactly_that_partition_in_one_commit(lake):
    _write(lake, "P1", 5)
    _write(lake, "P2", 3)
    version = lance.dataset(lake.uri("things")).version
    result = _write(lake, "P1", 5, value=7, run="run-2")
    dataset = lance.dataset(lake.uri("things"))
    assert result.changed and dataset.version == version + 1
    rows = dataset.to_table().to_pylist()
    assert sorted(r["value"] for r in rows if r["plate"] == "P1") == [7] * 5
    assert [r["value"] for r in rows if r["plate"] == "P2"] == [1] * 3


def test_a_rerun_that_would_remove_rows_is_refused_naming_them_and_leaves_no_files(lake):
    _write(lake, "P1", 6)
    version = lance.dataset(lake.uri("things")).version
    files = _files(Path(lake.root))
    with pytest.raises(RemovalRefusedError, match=r"remove 2 of the plate's 6 .*P1-4, P1-5"):
        _write(lake, "P1", 4, run="run-2")
    assert lance.dataset(lake.uri("things")).version == version
    assert _files(Path(lake.root)) == files
    allowed = _write(lake, "P1", 4, run="run-3", max_removed_fraction=None)
    assert allowed.rows_removed == 2 and lance.dataset(lake.uri("things")).count_rows() == 4


def test_a_stream_that_fails_commits_nothing_and_keeps_its_error(lake):
    _write(lake, "P1", 3)
    version = lance.dataset(lake.uri("things")).version

    def failing():
        yield from _batches("P1", 3, value=2)
        raise KeyError("the third site is missing")

    with pytest.raises(KeyError, match="third site"):
        write_partition(lake, _plate("P1"), SCHEMA, failing(), run_id="run-2")
    assert lance.dataset(lake.uri("things")).version == version
    assert read_record(lake, "things", "s__P1").version == version


def test_repeated_keys_are_refused(lake):
    batches = _batches("P1", 3) + _batches("P1", 2)
    with pytest.raises(ValueError, match="repeat keys of column key .*P1-0"):
        write_partition(lake, _plate("P1"), SCHEMA, batches, run_id="run-1")


def test_a_partition_with_no_rows_is_recorded_without_a_commit(lake):
    _write(lake, "P1", 2)
    version = lance.dataset(lake.uri("things")).version
    result = _write(lake, "P9", 0)
    assert result.rows == 0 and lance.dataset(lake.uri("things")).version == version
    assert read_record(lake, "things", "s__P9").rows == 0


def test_a_crash_between_commit_and_record_means_the_next_run_commits(lake):
    _write(lake, "P1", 3)
    dataset = lance.dataset(lake.uri("things"))
    record = read_record(lake, "things", "s__P1")
    pending = PartitionRecord("committing", record.digest, 3, dataset.version, "run-x", "")
    lake.store.write_bytes(record_key("things", "s__P1"), repr(pending).encode())  # unreadable
    assert _write(lake, "P1", 3, run="run-2").changed


def _before_p1_commits(monkeypatch, action):
    """Run `action` once, between the protocol's read of the latest version and its commit."""
    held, done = Lease.assert_held, []

    def interleaved(self):
        if self.partition == "s__P1" and not done:
            done.append(action())
        held(self)

    monkeypatch.setattr(Lease, "assert_held", interleaved)


def test_a_commit_preempted_by_another_partition_is_rebased_not_recomputed(lake, monkeypatch):
    """Both plates' rows share one fragment; P2's re-write deletes from that fragment and commits
    between P1's read and P1's commit. Both land; P1's rows were streamed once."""
    both = pa.concat_tables([pa.Table.from_batches(_batches(p, 3)) for p in ("P1", "P2")])
    lance.write_dataset(both, lake.uri("things"))
    streamed = []

    def p1_rows():
        streamed.append(1)
        yield from _batches("P1", 3, value=5)

    _before_p1_commits(monkeypatch, lambda: _write(lake, "P2", 3, value=9, run="run-p2"))
    write_partition(lake, _plate("P1"), SCHEMA, p1_rows(), run_id="run-p1")
    rows = lance.dataset(lake.uri("things")).to_table().to_pylist()
    assert sorted((r["plate"], r["value"]) for r in rows) == [("P1", 5)] * 3 + [("P2", 9)] * 3
    assert streamed == [1]


def test_a_commit_preempted_by_a_compaction_is_rebased_on_the_rewritten_fragments(
    lake, monkeypatch
):
    """A compaction (Lance `Rewrite`) that lands while P1 is staged rewrites the fragments P1's
    deletions point at: Lance refuses P1's commit, and the protocol recomputes the deletions on
    the compacted version and commits the same staged files."""
    for plate in ("P1", "P2"):
        for part in range(3):
            lance.write_dataset(
                pa.Table.from_batches(_batches(plate, 2, start=2 * part)),
                lake.uri("things"),
                mode="append",
            )
    streamed = []

    def p1_rows():
        streamed.append(1)
        yield from _batches("P1", 6, value=5)

    _before_p1_commits(
        monkeypatch,
        lambda: lance.dataset(lake.uri("things")).optimize.compact_files(
            target_rows_per_fragment=100
        ),
    )
    result = write_partition(lake, _plate("P1"), SCHEMA, p1_rows(), run_id="run-p1")
    rows = lance.dataset(lake.uri("things")).to_table().to_pylist()
    assert sorted((r["plate"], r["value"]) for r in rows) == [("P1", 5)] * 6 + [("P2", 1)] * 6
    assert result.commit_attempts == 2 and streamed == [1]


def test_schema_evolution_adds_columns_for_writers_that_lack_them(lake):
    wide = SCHEMA.append(pa.field("extra", pa.float64()))
    batch = pa.RecordBatch.from_pylist(
        [{"key": "P2-0", "source": "s", "plate": "P2", "value": 1, "extra": 0.5}], schema=wide
    )
    _write(lake, "P1", 2, evolve=True)
    write_partition(lake, _plate("P2"), wide, [batch], run_id="r", evolve=True)
    rows = lance.dataset(lake.uri("things")).to_table().to_pylist()
    assert {r["key"]: r["extra"] for r in rows} == {"P1-0": None, "P1-1": None, "P2-0": 0.5}


def test_a_commit_preempted_by_another_partitions_schema_change_is_rebased(lake, monkeypatch):
    """Profiles of another source add a column (Lance `Merge`) between P1's read and commit:
    P1's staged files, written without that column, are committed on the wider version and
    read the new column as null. Nothing is streamed twice."""
    _write(lake, "P0", 2, evolve=True)
    wider = SCHEMA.append(pa.field("extra", pa.int64()))
    other = pa.RecordBatch.from_pylist(
        [{"key": "OTHER-0", "source": "s", "plate": "OTHER", "value": 1, "extra": 3}], schema=wider
    )
    streamed = []

    def p1_rows():
        streamed.append(1)
        yield from _batches("P1", 4)

    _before_p1_commits(
        monkeypatch,
        lambda: write_partition(lake, _plate("OTHER"), wider, [other], run_id="o", evolve=True),
    )
    write_partition(lake, _plate("P1"), SCHEMA, p1_rows(), run_id="run-p1", evolve=True)
    rows = lance.dataset(lake.uri("things")).to_table().to_pylist()
    assert sorted((r["key"], r["extra"]) for r in rows) == [
        ("OTHER-0", 3),
        ("P0-0", None),
        ("P0-1", None),
        ("P1-0", None),
        ("P1-1", None),
        ("P1-2", None),
        ("P1-3", None),
    ]
    assert streamed == [1]
