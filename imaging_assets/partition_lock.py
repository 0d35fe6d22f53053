"""A lease on one partition of a Lance dataset, held while a run writes it.

Measured with pylance 14: two merge_insert commits of the same plate conflict when the plate
already has rows, but when it has none, both commits are pure inserts and Lance accepts both, so
two concurrent first runs of one plate would duplicate it. The lease closes that gap: a lock object
created with a conditional write (O_EXCL locally, If-None-Match on S3) next to the dataset. A
lease older than its TTL is taken over (its run died); dagster.yaml also limits runs to one per
partition, so contention here means two deployments or a manual launch.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator

from imaging_assets.errors import MissingObjectError
from imaging_assets.resources.stores import ObjectStore

LOCKS_DIR = "_partition_locks"
DEFAULT_TTL_S = 6 * 3600


class PartitionBusyError(RuntimeError):
    """Another run holds the partition's lease."""


def lock_key(dataset: str, partition: str) -> str:
    return f"{LOCKS_DIR}/{dataset}/{partition}.lock"


@contextlib.contextmanager
def partition_lease(
    store: ObjectStore, dataset: str, partition: str, owner: str, ttl_s: float = DEFAULT_TTL_S
) -> Iterator[None]:
    """Hold the lease for (dataset, partition) during the block; raise PartitionBusyError if held."""
    key = lock_key(dataset, partition)
    body = json.dumps({"owner": owner, "acquired_at": time.time()}).encode()
    if not store.create_exclusive(key, body):
        try:
            holder = json.loads(store.read(key).data)
        except (MissingObjectError, ValueError):
            # released or replaced between our attempt and this read: treat as held, never expired
            holder = {"owner": "another run", "acquired_at": time.time()}
        age = time.time() - float(holder.get("acquired_at", 0.0))
        if age < ttl_s:
            raise PartitionBusyError(
                f"{dataset} partition {partition} is being written by run {holder.get('owner')} "
                f"(lease taken {age:.0f} s ago); retry when it finishes"
            )
        store.delete(key)  # expired: its run died without releasing it
        if not store.create_exclusive(key, body):
            raise PartitionBusyError(
                f"{dataset} partition {partition}: lease taken over concurrently"
            )
    try:
        yield
    finally:
        store.delete(key)
