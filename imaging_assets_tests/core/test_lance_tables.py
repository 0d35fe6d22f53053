"""Lance datasets as the lake keeps them: created once, schemas checked or evolved, key indexes."""

from __future__ import annotations

import threading

import lance
import pyarrow as pa
import pytest

from imaging_assets.core.lake import Lake
from imaging_assets.core.lance_tables import (
    SchemaMismatchError,
    create_once,
    ensure_dataset,
)
from imaging_assets.core.partition_write import Partition, write_partition
from imaging_assets_tests.lakes import partition_filter_for

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


def _write(uri: str, plate: str, n: int, schema: pa.Schema = SCHEMA, batches=None, **kwargs):
    lake = Lake.open(uri.rsplit("/", 1)[0])
    name = uri.rsplit("/", 1)[1].removesuffix(".lance")
    partition = Partition(name, f"s__{plate}", partition_filter_for("s", plate), "key")
    return write_partition(
        lake, partition, schema, batches or _rows(plate, n), run_id="run-1", **kwargs
    )


def test_concurrent_creators_make_one_version(tmp_path):
    uri = str(tmp_path / "d.lance")
    created: list[bool] = []
    threads = [
        threading.Thread(target=lambda: created.append(create_once(uri, SCHEMA))) for _ in range(6)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert created.count(True) == 1 and len(lance.dataset(uri).versions()) == 1


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
    _write(uri, "P9", 1, wider, [batch], evolve=True)
    _write(uri, "P1", 1, evolve=True)
    rows = {r["key"]: r["extra"] for r in lance.dataset(uri).to_table().to_pylist()}
    assert rows == {"w": 0.5, "P1-0": None}


def test_filters_quote_values():
    assert partition_filter_for("s", "O'Brien") == "source = 's' AND plate = 'O''Brien'"


def test_key_index_is_created_then_kept_current(tmp_path):
    from imaging_assets.core.lance_tables import ensure_key_index

    uri = str(tmp_path / "d.lance")
    ensure_dataset(uri, SCHEMA)
    assert ensure_key_index(uri, "key").action == "skipped"  # nothing to index yet
    _write(uri, "P1", 5)
    assert ensure_key_index(uri, "key").action == "created"
    _write(uri, "P2", 5)
    assert ensure_key_index(uri, "key", max_unindexed_rows=100).action == "current"
    assert ensure_key_index(uri, "key", max_unindexed_rows=1).action == "optimized"
    dataset = lance.dataset(uri)
    assert dataset.to_table(filter="key = 'P2-3'").num_rows == 1
    _write(uri, "P2", 2, max_removed_fraction=None)  # the index in place, a plate replaced
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
    from imaging_assets.core.lance_tables import addable

    uri = str(tmp_path / "d.lance")
    old = pa.schema([("key", pa.string()), ("source", pa.string()), ("plate", pa.string())])
    _write(
        uri,
        "P",
        1,
        old,
        [pa.RecordBatch.from_pylist([{"key": "a", "source": "s", "plate": "P"}], schema=old)],
    )
    new = pa.schema([old[0], addable(pa.field("read_uri", pa.string())), old[1], old[2]])
    row = {"key": "b", "source": "s", "plate": "P2", "read_uri": "x"}
    _write(uri, "P2", 1, new, [pa.RecordBatch.from_pylist([row], schema=new)])
    table = lance.dataset(uri).to_table().sort_by("key")
    assert table["read_uri"].to_pylist() == [None, "x"]
    with pytest.raises(SchemaMismatchError):
        ensure_dataset(uri, pa.schema([*new, pa.field("not_addable", pa.string())]))
