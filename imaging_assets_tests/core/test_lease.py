"""The partition lease: one winner per generation, crashes never strand a partition."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time

import lance
import pyarrow as pa
import pytest

from imaging_assets.core.lake import Lake
from imaging_assets.core.lease import (
    Lease,
    LeaseLostError,
    PartitionBusyError,
    lease_prefix,
    partition_lease,
    read_state,
)
from imaging_assets.core.s3 import S3Settings
from imaging_assets.core.stores import LocalStore, S3Store
from imaging_assets_tests.lakes import partition_filter_for


def _plant(
    store, dataset: str, partition: str, generation: int, body: bytes, age_s: float = 0.0
) -> None:
    """A lease generation as another holder left it, `age_s` old by the store's clock (local
    stores only: S3's LastModified cannot be set, those tests wait instead)."""
    key = f"{lease_prefix(dataset, partition)}{generation:012d}.json"
    store.write_bytes(key, body)
    if age_s:
        then = time.time() - age_s
        os.utime(store.path(key), (then, then))


def _held_by(run_id: str, *, host: str = "elsewhere", pid: int = 1, renewed_at: float) -> bytes:
    return json.dumps(
        {
            "state": "held",
            "holder": {"run_id": run_id, "host": host, "pid": pid},
            "renewed_at": renewed_at,
        }
    ).encode()


def _race(
    store, contenders: int, dataset: str, partition: str, hold_s: float = 0.2, ttl_s: float = 30
) -> int:
    """Start `contenders` threads at once; each holds the lease `hold_s` if it wins it.

    Returns the most holders seen at once (a contender that loses the first race may still win
    legitimately after the first holder released).
    """
    barrier = threading.Barrier(contenders)
    lock = threading.Lock()
    holding = [0]
    most = [0]

    def contend(n: int) -> None:
        barrier.wait()
        try:
            with Lease(store, dataset, partition, f"run-{n}", ttl_s=ttl_s, wait_s=0):
                with lock:
                    holding[0] += 1
                    most[0] = max(most[0], holding[0])
                time.sleep(hold_s)
                with lock:
                    holding[0] -= 1
        except PartitionBusyError:
            pass

    threads = [threading.Thread(target=contend, args=(n,)) for n in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return most[0]


def test_a_live_holder_blocks_and_is_named(tmp_path):
    store = LocalStore(tmp_path)
    with Lease(store, "d", "s__P1", "run-a"):
        with pytest.raises(PartitionBusyError, match="run-a") as raised:
            Lease(store, "d", "s__P1", "run-b", wait_s=0).acquire()
        message = str(raised.value)
        assert "_leases/d/s__P1" in message  # says where the lease lives
        # and what to do: wait, or end the dead run so that the lease is taken over at once
        assert "taken over 90 s from now" in message or "taken over 89 s from now" in message
        assert "imaging-assets runs fail run-a" in message
    with Lease(store, "d", "s__P1", "run-b"):  # released: free again
        pass


@pytest.mark.parametrize(
    "body",
    [b"", b"{not json", b"[]", json.dumps({"state": "held"}).encode()],
    ids=["empty", "garbage", "not-an-object", "no-holder"],
)
def test_unreadable_leases_are_taken_over(tmp_path, body):
    store = LocalStore(tmp_path)
    _plant(store, "d", "p", 7, body)
    with Lease(store, "d", "p", "run-new") as lease:
        assert lease.generation == 8 and lease.took_over


def test_ages_come_from_the_store_not_from_the_hosts_clocks(tmp_path):
    """A holder whose host clock runs 95 s ahead (or behind) writes times a contender cannot
    trust; the store's clock decides: a fresh generation is live, an old one expired."""
    store = LocalStore(tmp_path)
    _plant(store, "d", "ahead", 1, _held_by("run-x", renewed_at=time.time() + 95))
    _plant(store, "d", "behind", 1, _held_by("run-y", renewed_at=time.time() - 95))
    for partition in ("ahead", "behind"):
        with pytest.raises(PartitionBusyError):
            Lease(store, "d", partition, "run-new", wait_s=0).acquire()
    _plant(store, "d", "old", 1, _held_by("run-z", renewed_at=time.time() + 95), age_s=91)
    with Lease(store, "d", "old", "run-new") as lease:
        assert "stopped renewing it 91 s ago" in lease.took_over


def test_a_rerun_waits_for_a_dead_holders_lease_to_expire_instead_of_failing(tmp_path):
    store = LocalStore(tmp_path)
    _plant(store, "d", "p", 1, _held_by("run-crashed", renewed_at=time.time()), age_s=1.0)
    started = time.monotonic()
    with Lease(store, "d", "p", "run-new", ttl_s=2.0) as lease:
        waited = time.monotonic() - started
        assert "stopped renewing" in lease.took_over
    assert 0.5 < waited < 4.0


def test_a_finished_run_is_taken_over_at_once_and_a_running_one_is_not(tmp_path):
    store = LocalStore(tmp_path)
    _plant(store, "d", "p", 1, _held_by("run-dead", renewed_at=time.time()))
    with pytest.raises(PartitionBusyError):  # known alive: busy at once, no waiting
        Lease(store, "d", "p", "run-new", run_alive=lambda run_id: True).acquire()
    with Lease(store, "d", "p", "run-new", run_alive=lambda run_id: run_id != "run-dead") as lease:
        assert "no longer in progress" in lease.took_over


def test_a_holder_process_gone_from_this_host_is_taken_over(tmp_path):
    import socket
    import subprocess
    import sys

    exited = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    store = LocalStore(tmp_path)
    pid = int(exited.stdout)
    _plant(
        store,
        "d",
        "p",
        1,
        _held_by("run-x", host=socket.gethostname(), pid=pid, renewed_at=time.time()),
    )
    with Lease(store, "d", "p", "run-new") as lease:
        assert "exited" in lease.took_over


def test_an_earlier_attempt_of_the_same_run_is_taken_over(tmp_path):
    store = LocalStore(tmp_path)
    _plant(store, "d", "p", 1, _held_by("run-same", renewed_at=time.time()))
    with Lease(store, "d", "p", "run-same") as lease:
        assert "earlier attempt" in lease.took_over


def test_heartbeat_keeps_a_short_lease_alive_and_expiry_frees_it(tmp_path):
    store = LocalStore(tmp_path)
    holder = Lease(store, "d", "p", "run-a", ttl_s=1.0).acquire()
    time.sleep(2.5)  # > 2 TTLs: only the heartbeat keeps it
    with pytest.raises(PartitionBusyError):
        Lease(store, "d", "p", "run-b", ttl_s=1.0, wait_s=0).acquire()
    holder._stop.set()  # the holder hangs (no heartbeat) without releasing
    holder._heartbeat.join()
    time.sleep(1.5)
    with Lease(store, "d", "p", "run-b", ttl_s=1.0) as taker:
        assert "stopped renewing" in taker.took_over
        holder.renew()  # the old holder notices the newer generation
        with pytest.raises(LeaseLostError, match="taken over"):
            holder.assert_held()
    holder.release()  # never raises, never clobbers the new state
    assert not read_state(store, "d", "p").held


def test_expired_lease_takeover_has_exactly_one_winner_locally(tmp_path):
    store = LocalStore(tmp_path)
    for trial in range(20):
        partition = f"p{trial}"
        _plant(store, "d", partition, 3, _held_by("dead", renewed_at=0), age_s=60)
        assert _race(store, 4, "d", partition) == 1


@pytest.mark.s3
@pytest.mark.slow
def test_expired_lease_takeover_has_exactly_one_winner_on_s3(s3_server, s3_bucket, monkeypatch):
    """Bounded stress test on SeaweedFS: 40 trials of 4 contenders for an expired lease."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    store = S3Store(f"s3://{s3_bucket}/lake", S3Settings(endpoint_url=s3_server.endpoint_url))
    partitions = [f"src__P{trial}" for trial in range(40)]
    for partition in partitions:  # every lease left behind now; all expired once the TTL passed
        _plant(store, "site_images", partition, 5, _held_by("dead", renewed_at=0))
    time.sleep(4.0)  # > TTL 2 s by SeaweedFS's clock (with its whole-second rounding)
    winners = [_race(store, 4, "site_images", p, hold_s=0.3, ttl_s=2.0) for p in partitions]
    assert winners == [1] * 40


@pytest.mark.s3
@pytest.mark.slow
def test_a_store_outage_under_the_lease_keeps_the_original_error(tmp_path, monkeypatch):
    """The store goes down while a write holds the lease: the error that ended the write is what
    the user sees (not the lease's), and after the outage the lease is free within its TTL."""
    from imaging_assets_tests.servers import S3Server

    with S3Server(tmp_path / "weed") as server:
        for name, value in server.env().items():
            monkeypatch.setenv(name, value)
        bucket = server.make_bucket("outage")
        settings = S3Settings(endpoint_url=server.endpoint_url, max_attempts=2, connect_timeout_s=1)
        store = S3Store(f"s3://{bucket}/lake", settings)
        with (
            pytest.raises(RuntimeError, match="image s3://x/y.tif failed"),
            partition_lease(store, "site_images", "s__P1", "run-a", ttl_s=2),
        ):
            server.stop()
            raise RuntimeError("image s3://x/y.tif failed")
        server.start()
        time.sleep(2.5)  # the unreleased lease's heartbeat has stopped: it expires
        with Lease(store, "site_images", "s__P1", "run-b", ttl_s=2) as lease:
            assert lease.took_over


def test_maintenance_blocks_writers(tmp_path):
    store = LocalStore(tmp_path)
    with (
        Lease(store, "d", "_maintenance", "maint-run"),
        pytest.raises(PartitionBusyError, match="maintenance"),
        partition_lease(store, "d", "s__P1", "run-a"),
    ):
        pass
    with partition_lease(store, "d", "s__P1", "run-a"):
        pass


def _first_write_race(lake, trial: int, contenders: int = 3) -> list[str]:
    """Contenders write the first rows of one plate at once through the partition-write protocol
    (which takes the plate's lease); the losers are busy, the rows land once."""
    from imaging_assets.core.partition_write import Partition, write_partition

    schema = pa.schema([("key", pa.string()), ("source", pa.string()), ("plate", pa.string())])
    plate = f"P{trial}"
    partition = Partition("d", f"s__{plate}", partition_filter_for("s", plate), "key")
    barrier = threading.Barrier(contenders)

    def rows():
        for i in range(4):
            time.sleep(0.02)
            yield pa.RecordBatch.from_pylist(
                [{"key": f"{plate}-k{i}", "source": "s", "plate": plate}], schema=schema
            )

    def contend(n: int) -> None:
        barrier.wait()
        with contextlib.suppress(PartitionBusyError):
            write_partition(lake, partition, schema, rows(), run_id=f"run-{trial}-{n}")

    threads = [threading.Thread(target=contend, args=(n,)) for n in range(contenders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    table = lance.dataset(lake.uri("d"), storage_options=lake.storage_options).to_table(
        filter=f"plate = '{plate}'"
    )
    return table["key"].to_pylist()


def test_concurrent_first_writes_of_a_plate_land_once_locally(tmp_path):
    lake = Lake.open(tmp_path)
    for trial in range(5):
        keys = _first_write_race(lake, trial)
        assert sorted(keys) == [f"P{trial}-k{i}" for i in range(4)]


@pytest.mark.s3
@pytest.mark.slow
def test_concurrent_first_writes_of_a_plate_land_once_on_s3(s3_server, s3_bucket, monkeypatch):
    """Bounded stress test on SeaweedFS: 12 plates, 3 runs each writing its first rows at once."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    lake = Lake.open(f"s3://{s3_bucket}/lake", S3Settings(endpoint_url=s3_server.endpoint_url))
    duplicated = []
    for trial in range(12):
        keys = _first_write_race(lake, trial)
        assert set(keys) == {f"P{trial}-k{i}" for i in range(4)}
        duplicated.append(len(keys) - len(set(keys)))
    assert duplicated == [0] * 12
