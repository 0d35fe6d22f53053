"""Many plates committing to one Lance dataset at once, from separate processes, on S3.

The deployment's backfill failed plates with "Update transaction is incompatible with concurrent
transaction Overwrite" when several plates created a missing dataset at once: on S3 Lance retried
the losing creations as Overwrite commits that landed after other plates' commits (and could erase
them). Every round here starts from a dataset that does not exist yet, releases all writers at the
same instant and has each also bring the key index up to date, as site_images does.
"""

from __future__ import annotations

import multiprocessing
import time

import lance
import pyarrow as pa
import pytest

from imaging_assets.core import lance_tables
from imaging_assets.core.lake import Lake
from imaging_assets.core.partition_write import Partition, write_partition
from imaging_assets.core.s3 import S3Settings
from imaging_assets_tests.lakes import partition_filter_for

pytestmark = [pytest.mark.s3, pytest.mark.slow]

SCHEMA = pa.schema(
    [
        ("site_key", pa.string()),
        ("source", pa.string()),
        ("plate", pa.string()),
        ("pixels", pa.large_binary()),
    ]
)
ROWS_PER_PLATE = 20


def _plate_batches(plate: str):
    keys = [f"s__{plate}__{i}" for i in range(ROWS_PER_PLATE)]
    yield pa.RecordBatch.from_pydict(
        {
            "site_key": keys,
            "source": ["s"] * len(keys),
            "plate": [plate] * len(keys),
            "pixels": [plate.encode() * 100] * len(keys),
        },
        schema=SCHEMA,
    )


def write_one_plate(args: tuple) -> str | None:
    """In a worker process: wait for the common start, write the plate through the protocol
    and bring the key index up to date; the error or None."""
    root, endpoint, name, plate, start_at = args
    lake = Lake.open(root, S3Settings(endpoint_url=endpoint))
    partition = Partition(name, f"s__{plate}", partition_filter_for("s", plate), "site_key")
    while time.time() < start_at:
        time.sleep(0.001)
    try:
        written = write_partition(
            lake, partition, SCHEMA, _plate_batches(plate), run_id=f"run-{plate}"
        )
        lance_tables.ensure_key_index(
            lake.uri(name), "site_key", lake.storage_options, max_unindexed_rows=0
        )
        if written.rows != ROWS_PER_PLATE:
            return f"{plate}: wrote {written.rows} rows"
    except Exception as error:
        return f"{plate}: {type(error).__name__}: {error}"
    return None


def test_plates_released_at_once_into_a_new_dataset_all_land(s3_server, s3_bucket, monkeypatch):
    writers, rounds = 8, 6
    for variable, value in s3_server.env().items():  # the workers inherit the credentials
        monkeypatch.setenv(variable, value)
    root = f"s3://{s3_bucket}/lake"
    options = s3_server.storage_options()
    failures: list[str] = []
    with multiprocessing.get_context("spawn").Pool(writers) as pool:
        pool.map(time.sleep, [0] * writers)  # workers started and imported before the first round
        for round_ in range(rounds):
            name = f"round{round_}"
            uri = f"{root}/{name}.lance"
            start_at = time.time() + 1.0
            plates = [f"P{i}" for i in range(writers)]
            jobs = [(root, s3_server.endpoint_url, name, p, start_at) for p in plates]
            errors = [e for e in pool.map(write_one_plate, jobs) if e]
            failures += errors
            table = lance.dataset(uri, storage_options=options).to_table(
                columns=["site_key", "plate"]
            )
            keys = table["site_key"].to_pylist()
            assert len(keys) == len(set(keys)), f"round {round_}: duplicated rows"
            landed = set(table["plate"].to_pylist())
            failed = {e.split(":", 1)[0] for e in errors}
            assert landed | failed == set(plates), f"round {round_}: committed plates were erased"
    assert not failures, (
        f"{len(failures)} of {writers * rounds} plate commits failed:\n" + "\n".join(failures[:4])
    )
