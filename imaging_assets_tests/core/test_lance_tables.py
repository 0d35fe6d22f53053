"""One commit per plate on real Lance datasets: parallel plates, re-runs, failures mid-stream."""

from __future__ import annotations

import threading

import lance
import pyarrow as pa
import pytest

from imaging_assets.core.lance_tables import (
    ConcurrentPartitionWriteError,
    SchemaMismatchError,
    ensure_dataset,
    partition_filter_for,
    replace_partition,
)

SCHEMA = pa.schema(
    [("key", pa.string()), ("source", pa.string()), ("plate", pa.string()), ("value", pa.int64())]
)


def _rows(plate: str, n: int, value: int = 1) -> list[pa.RecordBatch]:
    table = pa.table(
        {
            "key": [f"{plate}-{i}" for i in range(n)],
            "source": ["s"] * n,
            "plate": [plate] * n,
            "value": [value] * n,
        },
        schema=SCHEMA,
    )
    return table.to_batches(max_chunksize=2)


def _replace(uri, plate, n, value=1, **kwargs):
    return replace_partition(
        uri,
        _rows(plate, n, value),
        SCHEMA,
        key="key",
        partition_filter=partition_filter_for("s", plate),
        **kwargs,
    )


def test_two_plates_from_two_threads_both_land(tmp_path):
    uri = str(tmp_path / "d.lance")
    ensure_dataset(uri, SCHEMA)
    threads = [threading.Thread(target=_replace, args=(uri, plate, 5)) for plate in ("P1", "P2")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert lance.dataset(uri).count_rows() == 10


def test_rerun_replaces_exactly_that_plate(tmp_path):
    uri = str(tmp_path / "d.lance")
    _replace(uri, "P1", 5)
    _replace(uri, "P2", 3)
    result = _replace(uri, "P1", 4, value=2, properties={"dagster_run_id": "run-2"})
    table = lance.dataset(uri).to_table()
    assert table.num_rows == 7
    p1 = [r for r in table.to_pylist() if r["plate"] == "P1"]
    assert len(p1) == 4 and {r["value"] for r in p1} == {2}
    assert (result.rows_updated, result.rows_deleted) == (4, 1)
    properties = lance.dataset(uri).read_transaction(result.version).transaction_properties
    assert properties["dagster_run_id"] == "run-2"


def test_a_stream_that_fails_commits_nothing_and_keeps_its_error(tmp_path):
    uri = str(tmp_path / "d.lance")
    _replace(uri, "P1", 5)
    before = lance.dataset(uri)

    class Boom(RuntimeError):
        pass

    def failing():
        yield from _rows("P1", 2, value=9)
        raise Boom("fetch failed mid-plate")

    with pytest.raises(Boom):
        replace_partition(
            uri, failing(), SCHEMA, key="key", partition_filter=partition_filter_for("s", "P1")
        )
    after = lance.dataset(uri)
    assert (after.version, after.count_rows()) == (before.version, 5)
    assert {r["value"] for r in after.to_table().to_pylist()} == {1}


def test_rerunning_a_written_plate_concurrently_conflicts_instead_of_duplicating(tmp_path):
    # Once the plate has rows, concurrent re-runs conflict on them. (Two concurrent FIRST writes
    # of a plate are pure inserts that Lance accepts both: the partition lease (core/lease.py) covers that case.)
    uri = str(tmp_path / "d.lance")
    _replace(uri, "P1", 50)
    errors: list[BaseException] = []

    def run():
        try:
            _replace(uri, "P1", 50)
        except ConcurrentPartitionWriteError as error:
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    keys = lance.dataset(uri).to_table(columns=["key"])["key"].to_pylist()
    assert sorted(keys) == sorted(f"P1-{i}" for i in range(50))


def test_schema_mismatch_is_named_and_evolution_fills_nulls(tmp_path):
    uri = str(tmp_path / "d.lance")
    ensure_dataset(uri, SCHEMA)
    other = SCHEMA.set(3, pa.field("value", pa.string()))
    with pytest.raises(SchemaMismatchError, match="value"):
        ensure_dataset(uri, other)
    wider = SCHEMA.append(pa.field("extra", pa.float64()))
    batch = pa.RecordBatch.from_pylist(
        [{"key": "w", "source": "s", "plate": "P9", "value": 1, "extra": 0.5}], schema=wider
    )
    replace_partition(
        uri,
        [batch],
        wider,
        key="key",
        partition_filter=partition_filter_for("s", "P9"),
        evolve=True,
    )
    _replace(uri, "P1", 1, evolve=True)
    rows = {r["key"]: r["extra"] for r in lance.dataset(uri).to_table().to_pylist()}
    assert rows == {"w": 0.5, "P1-0": None}


def test_filters_quote_values():
    assert partition_filter_for("s", "O'Brien") == "source = 's' AND plate = 'O''Brien'"


def test_key_index_is_created_then_kept_current(tmp_path):
    from imaging_assets.core.lance_tables import ensure_key_index

    uri = str(tmp_path / "d.lance")
    ensure_dataset(uri, SCHEMA)
    assert ensure_key_index(uri, "key").action == "skipped"  # nothing to index yet
    _replace(uri, "P1", 5)
    assert ensure_key_index(uri, "key").action == "created"
    _replace(uri, "P2", 5)
    assert ensure_key_index(uri, "key", max_unindexed_rows=100).action == "current"
    assert ensure_key_index(uri, "key", max_unindexed_rows=1).action == "optimized"
    dataset = lance.dataset(uri)
    assert dataset.to_table(filter="key = 'P2-3'").num_rows == 1
    _replace(uri, "P2", 2)  # a re-run with the index in place still replaces the plate
    assert lance.dataset(uri).count_rows(filter="plate = 'P2'") == 2


def test_a_corrupt_manifest_names_the_dataset(tmp_path):
    from imaging_assets.core.lance_tables import UnreadableDatasetError, open_dataset

    uri = str(tmp_path / "site_images.lance")
    lance.write_dataset(pa.table({"k": ["a"]}), uri)
    for manifest in (tmp_path / "site_images.lance" / "_versions").glob("*.manifest"):
        manifest.write_bytes(b"garbage")
    with pytest.raises(
        UnreadableDatasetError, match=r"site_images\.lance: the Lance dataset cannot be opened"
    ):
        open_dataset(uri)


def test_addable_columns_are_added_to_older_datasets_and_others_still_refused(tmp_path):
    from imaging_assets.core.lance_tables import SchemaMismatchError, addable, ensure_dataset

    uri = str(tmp_path / "d.lance")
    old = pa.schema([("key", pa.string()), ("source", pa.string()), ("plate", pa.string())])
    replace_partition(
        uri,
        [pa.RecordBatch.from_pylist([{"key": "a", "source": "s", "plate": "P"}], schema=old)],
        old,
        key="key",
        partition_filter=partition_filter_for("s", "P"),
    )
    new = pa.schema([old[0], addable(pa.field("read_uri", pa.string())), old[1], old[2]])
    replace_partition(
        uri,
        [
            pa.RecordBatch.from_pylist(
                [{"key": "b", "source": "s", "plate": "P2", "read_uri": "x"}], schema=new
            )
        ],
        new,
        key="key",
        partition_filter=partition_filter_for("s", "P2"),
    )
    table = lance.dataset(uri).to_table().sort_by("key")
    assert table["read_uri"].to_pylist() == [None, "x"]
    with pytest.raises(SchemaMismatchError):
        ensure_dataset(uri, pa.schema([*new, pa.field("not_addable", pa.string())]))


def _evolving_write_meanwhile(uri: str, plate: str) -> None:
    """Another partition's writer with a column the dataset lacks: it commits a schema change
    (Lance "Merge") and then its rows."""
    wider = SCHEMA.append(pa.field("extra", pa.float64()))
    row = {"key": f"{plate}-0", "source": "s", "plate": plate, "value": 7, "extra": 0.5}
    replace_partition(
        uri,
        [pa.RecordBatch.from_pylist([row], schema=wider)],
        wider,
        key="key",
        partition_filter=partition_filter_for("s", plate),
        evolve=True,
    )


def _interrupted_once(uri: str, plate: str, n: int, calls: list[int]):
    """A replayable stream for `plate` whose first reading lets another partition evolve the
    schema before its rows flow: the commit of that first attempt is preempted."""

    def batches():
        calls.append(len(calls) + 1)
        if len(calls) == 1:
            _evolving_write_meanwhile(uri, "OTHER")
        yield from _rows(plate, n)

    return batches


def test_a_commit_preempted_by_another_partitions_schema_change_is_redone(tmp_path):
    uri = str(tmp_path / "d.lance")
    _replace(uri, "P0", 2)
    calls: list[int] = []
    checks: list[int] = []
    result = replace_partition(
        uri,
        _interrupted_once(uri, "P1", 5, calls),
        SCHEMA,
        key="key",
        partition_filter=partition_filter_for("s", "P1"),
        evolve=True,
        before_commit=lambda preview: checks.append(preview.rows_inserted),
    )
    assert calls == [1, 2] and checks == [5, 5]  # staged twice, the veto asked both times
    assert result.rows_written == 5 and result.rows_inserted == 5
    rows = lance.dataset(uri).to_table().to_pylist()
    assert sorted(r["key"] for r in rows) == sorted(
        ["P0-0", "P0-1", "OTHER-0"] + [f"P1-{i}" for i in range(5)]
    )
    assert {r["extra"] for r in rows if r["plate"] == "P1"} == {None}


def test_a_stream_that_cannot_be_replayed_names_the_conflict(tmp_path):
    uri = str(tmp_path / "d.lance")
    _replace(uri, "P0", 2)
    once = _interrupted_once(uri, "P1", 5, [])()  # a generator: read once
    with pytest.raises(ConcurrentPartitionWriteError, match="schema change.*Re-run") as caught:
        replace_partition(
            uri,
            once,
            SCHEMA,
            key="key",
            partition_filter=partition_filter_for("s", "P1"),
            evolve=True,
        )
    assert "preempted" in str(caught.value)
    assert "P1-0" not in lance.dataset(uri).to_table(columns=["key"])["key"].to_pylist()
