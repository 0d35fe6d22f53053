"""Fencing on SeaweedFS: a holder that lost its lease never commits, whatever the clocks say.

Each scenario is a real process frozen or skewed as a user's machines would be: a holder
stopped with SIGSTOP past the TTL (a VM pause) while others take the plate over, release it
(pruning old generations) and take it again; a contender whose clock runs 95 s ahead. Every trial
ends with exactly one row per key.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import lance
import pyarrow as pa
import pytest

from imaging_assets.core.lake import Lake
from imaging_assets.core.partition_write import Partition, write_partition
from imaging_assets.core.s3 import S3Settings
from imaging_assets_tests.conftest import PROJECT_ROOT
from imaging_assets_tests.lakes import partition_filter_for

pytestmark = [pytest.mark.s3, pytest.mark.slow]
SCHEMA = pa.schema([("key", pa.string()), ("source", pa.string()), ("plate", pa.string()),
                    ("writer", pa.string())])  # fmt: skip
TTL_S = 2.0
ROWS = 5

# A writer in its own process: it streams its rows, then waits for `go` before its stream ends
# (so the test can freeze it with its lease held), then tries to commit. Exit code 3: it lost.
WRITER = textwrap.dedent(
    """
    import sys, time, pathlib
    import pyarrow as pa
    from imaging_assets.core.lake import Lake
    from imaging_assets.core.lease import LeaseLostError
    from imaging_assets.core.partition_write import Partition, write_partition
    from imaging_assets.core.s3 import S3Settings

    root, endpoint, plate, writer, flags = sys.argv[1:6]
    ROWS = 5
    flags = pathlib.Path(flags)
    schema = pa.schema([("key", pa.string()), ("source", pa.string()), ("plate", pa.string()),
                        ("writer", pa.string())])

    def rows():
        yield pa.RecordBatch.from_pylist(
            [{"key": f"{plate}-{i}", "source": "s", "plate": plate, "writer": writer}
             for i in range(ROWS)], schema=schema)
        (flags / "staged").touch()
        while not (flags / "go").exists():
            time.sleep(0.05)

    lake = Lake.open(root, S3Settings(endpoint_url=endpoint))
    partition = Partition("d", f"s__{plate}", f"source = 's' AND plate = '{plate}'", "key")
    try:
        write_partition(lake, partition, schema, rows(), run_id=f"run-{writer}",
                        max_removed_fraction=None)
    except LeaseLostError as error:
        print(error, file=sys.stderr)
        sys.exit(3)
    """
)


def _rows(plate: str, writer: str) -> list[pa.RecordBatch]:
    return [
        pa.RecordBatch.from_pylist(
            [{"key": f"{plate}-{i}", "source": "s", "plate": plate, "writer": writer}
             for i in range(ROWS)],
            schema=SCHEMA,
        )
    ]  # fmt: skip


def _partition(plate: str) -> Partition:
    return Partition("d", f"s__{plate}", partition_filter_for("s", plate), "key")


@pytest.fixture()
def lake(s3_server, s3_bucket, monkeypatch) -> Lake:
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("IMAGING_ASSETS_LEASE_TTL_S", str(TTL_S))
    return Lake.open(f"s3://{s3_bucket}/lake", S3Settings(endpoint_url=s3_server.endpoint_url))


def _start_writer(lake: Lake, endpoint: str, plate: str, writer: str, flags: Path):
    flags.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, lake.root, endpoint, plate, writer, str(flags)],
        cwd=PROJECT_ROOT,
        env=os.environ.copy(),
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(path: Path, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.stderr.read()
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.05)


def _keys(lake: Lake, plate: str) -> tuple[list[str], set[str]]:
    table = lance.dataset(lake.uri("d"), storage_options=lake.storage_options).to_table(
        filter=f"plate = '{plate}'"
    )
    return table["key"].to_pylist(), set(table["writer"].to_pylist())


def test_a_holder_frozen_past_its_ttl_never_commits_after_takeovers(lake, s3_server, tmp_path):
    """A freezes holding the lease; B takes it over, commits and releases (pruning A's old
    generations); D takes it and is mid-write when A wakes. A's renewal and its fence find the
    newer generations: A exits without committing; D commits. Three trials."""
    for trial in range(3):
        plate = f"P{trial}"
        flags = tmp_path / f"a{trial}"
        a = _start_writer(lake, s3_server.endpoint_url, plate, "A", flags)
        _wait_for(flags / "staged", a)
        os.kill(a.pid, signal.SIGSTOP)  # a VM pause: the heartbeat thread stops too
        try:
            time.sleep(TTL_S + 2.5)  # past the TTL by the store's clock
            write_partition(lake, _partition(plate), SCHEMA, _rows(plate, "B"), run_id="run-B")
            d_ready, a_done = threading.Event(), threading.Event()

            def d_rows(plate=plate, d_ready=d_ready, a_done=a_done):
                yield from _rows(plate, "D")
                d_ready.set()
                assert a_done.wait(60)  # D holds the lease while A wakes and tries to commit

            d = threading.Thread(
                target=write_partition,
                args=(lake, _partition(plate), SCHEMA, d_rows()),
                kwargs={"run_id": "run-D"},
            )
            d.start()
            assert d_ready.wait(60)
        finally:
            (flags / "go").touch()
            os.kill(a.pid, signal.SIGCONT)
        assert a.wait(60) == 3, a.stderr.read()  # A knew it lost the lease
        a_done.set()
        d.join(60)
        keys, writers = _keys(lake, plate)
        assert sorted(keys) == [f"{plate}-{i}" for i in range(ROWS)], keys  # no double commit
        assert writers == {"D"}


def test_a_contender_with_a_clock_95_s_ahead_does_not_take_a_live_lease(lake, s3_server, tmp_path):
    """The holder is alive and renewing; a contender on a host whose clock runs 95 s ahead
    judges the lease by SeaweedFS's clock, waits for the holder to release, then writes."""
    plate = "SKEW"
    flags = tmp_path / "holder"
    holder = _start_writer(lake, s3_server.endpoint_url, plate, "A", flags)
    _wait_for(flags / "staged", holder)
    skewed = textwrap.dedent(
        """
        import time
        real = time.time
        time.time = lambda: real() + 95.0  # this host's clock runs 95 s ahead
        """
    ) + WRITER.replace('(flags / "staged").touch()', "pass")
    contender_flags = tmp_path / "contender"
    contender_flags.mkdir()
    (contender_flags / "go").touch()
    contender = subprocess.Popen(
        [sys.executable, "-c", skewed, lake.root, s3_server.endpoint_url, plate, "C",
         str(contender_flags)],
        cwd=PROJECT_ROOT,
        env=os.environ.copy(),
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    time.sleep(TTL_S * 2)  # the contender has judged the live lease for two TTLs
    keys, _ = _keys(lake, plate) if _dataset_exists(lake) else ([], set())
    assert not keys  # nothing committed while A holds the lease
    (flags / "go").touch()
    assert holder.wait(60) == 0, holder.stderr.read()
    assert contender.wait(60) == 0, contender.stderr.read()
    keys, writers = _keys(lake, plate)
    assert sorted(keys) == [f"{plate}-{i}" for i in range(ROWS)] and writers == {"C"}


def _dataset_exists(lake: Lake) -> bool:
    try:
        lance.dataset(lake.uri("d"), storage_options=lake.storage_options)
    except (ValueError, OSError):
        return False
    return True
