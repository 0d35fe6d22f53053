"""The partition lease: concurrent first writes of one plate cannot both land."""

from __future__ import annotations

import json
import threading
import time

import lance
import pyarrow as pa
import pytest

from imaging_assets.lance_tables import ensure_dataset, partition_filter_for, replace_partition
from imaging_assets.partition_lock import PartitionBusyError, lock_key, partition_lease
from imaging_assets.resources.stores import LocalStore

SCHEMA = pa.schema([("key", pa.string()), ("source", pa.string()), ("plate", pa.string())])


def _slow_rows():
    for i in range(5):
        time.sleep(0.05)
        yield pa.RecordBatch.from_pylist(
            [{"key": f"k{i}", "source": "s", "plate": "P1"}], schema=SCHEMA
        )


def test_concurrent_first_writes_of_a_plate_land_once(tmp_path):
    store = LocalStore(tmp_path)
    uri = str(tmp_path / "d.lance")
    ensure_dataset(uri, SCHEMA)
    outcomes: list[str] = []

    def run(owner: str) -> None:
        try:
            with partition_lease(store, "d", "s__P1", owner):
                replace_partition(
                    uri,
                    _slow_rows(),
                    SCHEMA,
                    key="key",
                    partition_filter=partition_filter_for("s", "P1"),
                )
            outcomes.append("written")
        except PartitionBusyError:
            outcomes.append("busy")

    threads = [threading.Thread(target=run, args=(f"run-{n}",)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    keys = lance.dataset(uri).to_table()["key"].to_pylist()
    assert sorted(keys) == [f"k{i}" for i in range(5)]
    assert outcomes.count("written") >= 1
    assert not (tmp_path / lock_key("d", "s__P1")).exists()  # released


def test_busy_names_the_holder_and_an_expired_lease_is_taken_over(tmp_path):
    store = LocalStore(tmp_path)
    with (
        partition_lease(store, "d", "s__P1", "run-a"),
        pytest.raises(PartitionBusyError, match="run-a"),
        partition_lease(store, "d", "s__P1", "run-b"),
    ):
        pass
    store.write_bytes(
        lock_key("d", "s__P1"), json.dumps({"owner": "dead", "acquired_at": 0}).encode()
    )
    with partition_lease(store, "d", "s__P1", "run-c", ttl_s=60):
        assert b"run-c" in store.read(lock_key("d", "s__P1")).data
