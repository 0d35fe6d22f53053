"""A lease on one partition of a dataset, held while a run writes it, that a crash never strands.

Why a lease at all: pylance 14 accepts two concurrent merge_insert commits of a partition that has
no rows yet (both are pure inserts), so two first runs of one plate would duplicate it.

How it stays safe with nothing but "create if absent" (O_EXCL/link locally, If-None-Match on S3):
every state change is the creation of the NEXT numbered object under
`_leases/<dataset>/<partition>/`, so among any number of contenders exactly one wins each
generation, also when taking over a dead holder's lease (no delete-then-create window). The
highest generation is the lease's state: "held" (with its holder: Dagster run, host, process, and
a heartbeat time) or "released".

Why a crash never blocks the partition: the holder renews its generation every ttl/4 seconds from
a background thread. A contender takes the lease over at once when the holder's run is known to be
finished (the Dagster instance says so; run monitoring marks dead runs failed), when the holder is
an earlier attempt of the contender's own run, when the holder's process is gone from this very
host, or when the content is unreadable or dated in the future; otherwise when the heartbeat is
older than the TTL (90 s by default). A holder that cannot renew (store down) or sees a newer
generation knows it lost the lease and must not commit (`assert_held`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

from imaging_assets.core.errors import MissingObjectError
from imaging_assets.core.stores import ObjectStore

LEASES_DIR = "_leases"
DEFAULT_TTL_S = float(os.environ.get("IMAGING_ASSETS_LEASE_TTL_S", "90"))
FUTURE_TOLERANCE_S = 60.0  # clock skew between hosts that is still believed
MAINTENANCE = "_maintenance"  # the pseudo-partition that lake maintenance holds

log = logging.getLogger(__name__)

RunAlive = Callable[[str], bool | None]
"""Is the Dagster run with this id still in progress? None when the instance does not know it."""


class PartitionBusyError(RuntimeError):
    """Another live holder has the partition's lease."""


class LeaseLostError(RuntimeError):
    """This holder's lease was taken over or could not be renewed: it must not commit."""


@dataclass(frozen=True)
class Holder:
    run_id: str
    host: str
    pid: int

    @classmethod
    def current(cls, run_id: str) -> Holder:
        return cls(run_id=run_id, host=socket.gethostname(), pid=os.getpid())

    def describe(self) -> str:
        return f"run {self.run_id} (host {self.host}, pid {self.pid})"


def lease_prefix(dataset: str, partition: str) -> str:
    """Where the lease objects of one partition live, relative to the lake root."""
    return f"{LEASES_DIR}/{dataset}/{partition}/"


def _generation_key(dataset: str, partition: str, generation: int) -> str:
    return f"{lease_prefix(dataset, partition)}{generation:012d}.json"


def _generation_of(key: str) -> int | None:
    name = key.rsplit("/", 1)[-1]
    stem = name.removesuffix(".json")
    return int(stem) if name.endswith(".json") and stem.isdigit() else None


def _process_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # exists, owned by someone else
        return False
    return False


@dataclass(frozen=True)
class LeaseState:
    """What the highest generation says; `content` is None when it could not be parsed."""

    generation: int
    content: dict | None

    @property
    def held(self) -> bool:
        return self.content is None or self.content.get("state") != "released"

    @property
    def holder(self) -> Holder | None:
        try:
            return Holder(**self.content["holder"])  # type: ignore[index]
        except (TypeError, KeyError, ValueError):
            return None


def read_state(store: ObjectStore, dataset: str, partition: str) -> LeaseState | None:
    """The partition's current lease state (None: never leased)."""
    while True:
        keys = list(store.list_keys(lease_prefix(dataset, partition)))
        generations = sorted(g for g in map(_generation_of, keys) if g is not None)
        if not generations:
            return None
        latest = generations[-1]
        try:
            data = store.read(_generation_key(dataset, partition, latest)).data
        except MissingObjectError:
            continue  # pruned between the listing and the read: look again
        try:
            content = json.loads(data)
            if not isinstance(content, dict):
                content = None
        except (ValueError, UnicodeDecodeError):
            content = None
        return LeaseState(latest, content)


def takeover_reason(
    state: LeaseState,
    *,
    ttl_s: float,
    my_run_id: str | None = None,
    run_alive: RunAlive | None = None,
    now: float | None = None,
) -> str | None:
    """Why a held lease may be taken over now, or None while its holder must be presumed alive."""
    now = time.time() if now is None else now
    if state.content is None:
        return "its lease object is empty or unreadable"
    holder = state.holder
    if holder is None:
        return "its lease names no holder"
    if my_run_id is not None and holder.run_id == my_run_id:
        return f"it is an earlier attempt of this run ({holder.describe()})"
    if run_alive is not None:
        with contextlib.suppress(Exception):  # the instance is advisory here; the TTL decides
            if run_alive(holder.run_id) is False:
                return f"{holder.describe()} is no longer in progress"
    if holder.host == socket.gethostname() and _process_gone(holder.pid):
        return f"{holder.describe()} has exited"
    try:
        renewed = float(state.content.get("renewed_at"))
    except (TypeError, ValueError):
        return "its lease has no valid heartbeat time"
    if renewed > now + FUTURE_TOLERANCE_S:
        return f"its heartbeat is dated {renewed - now:.0f} s in the future"
    if now - renewed > ttl_s:
        return (
            f"{holder.describe()} stopped renewing it {now - renewed:.0f} s ago (TTL {ttl_s:.0f} s)"
        )
    return None


class Lease:
    """Hold with `with Lease(...):`; raises PartitionBusyError when a live holder has it."""

    def __init__(
        self,
        store: ObjectStore,
        dataset: str,
        partition: str,
        run_id: str,
        *,
        ttl_s: float = DEFAULT_TTL_S,
        run_alive: RunAlive | None = None,
        attempts: int = 8,
    ) -> None:
        self.store, self.dataset, self.partition = store, dataset, partition
        self.holder = Holder.current(run_id)
        self.ttl_s, self.run_alive, self.attempts = ttl_s, run_alive, attempts
        self.generation: int | None = None
        self.took_over: str | None = None
        self._last_renewed = 0.0
        self._lost: str | None = None
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    # -- acquisition ---------------------------------------------------------------------------

    def _body(self, state: str, now: float) -> bytes:
        return json.dumps(
            {
                "state": state,
                "dataset": self.dataset,
                "partition": self.partition,
                "holder": asdict(self.holder),
                "acquired_at": now if state == "held" else None,
                "renewed_at": now,
                "ttl_s": self.ttl_s,
            }
        ).encode()

    def _key(self, generation: int) -> str:
        return _generation_key(self.dataset, self.partition, generation)

    def acquire(self) -> Lease:
        for _ in range(self.attempts):
            state = read_state(self.store, self.dataset, self.partition)
            reason = None
            if state is not None and state.held:
                reason = takeover_reason(
                    state, ttl_s=self.ttl_s, my_run_id=self.holder.run_id, run_alive=self.run_alive
                )
                if reason is None:
                    holder = state.holder
                    age = time.time() - float(state.content.get("renewed_at", 0.0))  # type: ignore[union-attr]
                    raise PartitionBusyError(
                        f"{self.dataset} partition {self.partition} is being written by "
                        f"{holder.describe() if holder else 'another run'} (heartbeat {age:.0f} s "
                        f"ago, TTL {self.ttl_s:.0f} s). It is taken over automatically once that "
                        f"run ends or stops renewing; lease objects: "
                        f"{self.store.uri(lease_prefix(self.dataset, self.partition))}"
                    )
            generation = 1 if state is None else state.generation + 1
            now = time.time()
            if self.store.create_exclusive(self._key(generation), self._body("held", now)):
                self.generation, self._last_renewed = generation, now
                if reason:
                    self.took_over = reason
                    log.warning(
                        "%s %s: took the lease over because %s",
                        self.dataset,
                        self.partition,
                        reason,
                    )
                self._prune(below=generation - 1)
                self._start_heartbeat()
                return self
            # another contender created that generation first: judge its state afresh
        raise PartitionBusyError(
            f"{self.dataset} partition {self.partition}: lost {self.attempts} races for the lease"
        )

    def _prune(self, below: int) -> None:
        """Delete generations older than `below` (best effort: they are never consulted)."""
        with contextlib.suppress(Exception):
            for key in list(self.store.list_keys(lease_prefix(self.dataset, self.partition))):
                generation = _generation_of(key)
                if generation is not None and generation < below:
                    self.store.delete(key)

    # -- holding -------------------------------------------------------------------------------

    def _start_heartbeat(self) -> None:
        self._stop.clear()
        self._heartbeat = threading.Thread(
            target=self._renew_loop, name=f"lease-{self.partition}", daemon=True
        )
        self._heartbeat.start()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl_s / 4):
            self.renew()

    def renew(self) -> None:
        """Refresh the heartbeat; notice a takeover. Store errors are tolerated until the TTL."""
        if self.generation is None or self._lost:
            return
        try:
            if self.store.exists(self._key(self.generation + 1)):
                self._lost = "a newer generation of the lease exists (it was taken over)"
                return
            now = time.time()
            self.store.write_bytes(self._key(self.generation), self._body("held", now))
            self._last_renewed = now
        except Exception as error:  # the store may be down: the TTL decides below
            log.warning("%s %s: lease renewal failed: %s", self.dataset, self.partition, error)

    def lost_reason(self) -> str | None:
        if self._lost:
            return self._lost
        silent = time.time() - self._last_renewed
        if self.generation is not None and silent > self.ttl_s:
            return f"it could not be renewed for {silent:.0f} s (TTL {self.ttl_s:.0f} s)"
        return None

    def assert_held(self) -> None:
        """Raise LeaseLostError when committing now could race another holder."""
        reason = self.lost_reason()
        if reason:
            raise LeaseLostError(
                f"{self.dataset} partition {self.partition}: this run lost its lease because "
                f"{reason}; nothing was committed"
            )

    # -- release -------------------------------------------------------------------------------

    def release(self) -> None:
        """Mark the lease released (best effort: a failure here only leaves it to expire)."""
        self._stop.set()
        if self._heartbeat is not None:
            self._heartbeat.join(timeout=5)
        if self.generation is None:
            return
        generation, self.generation = self.generation, None
        try:
            if self.store.create_exclusive(
                self._key(generation + 1), self._body("released", time.time())
            ):
                self._prune(below=generation)
        except Exception as error:  # never mask the error that ended the write
            log.warning(
                "%s %s: could not release the lease (%s); it expires in %.0f s",
                self.dataset,
                self.partition,
                error,
                self.ttl_s,
            )

    def __enter__(self) -> Lease:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def live_holders(
    store: ObjectStore,
    dataset: str,
    *,
    ttl_s: float = DEFAULT_TTL_S,
    run_alive: RunAlive | None = None,
) -> dict[str, Holder | None]:
    """Partitions of `dataset` whose lease is held by a presumably live holder."""
    live: dict[str, Holder | None] = {}
    for prefix in store.list_prefixes(f"{LEASES_DIR}/{dataset}/"):
        partition = prefix.rstrip("/").rsplit("/", 1)[-1]
        state = read_state(store, dataset, partition)
        if (
            state is not None
            and state.held
            and takeover_reason(state, ttl_s=ttl_s, run_alive=run_alive) is None
        ):
            live[partition] = state.holder
    return live


@contextlib.contextmanager
def partition_lease(
    store: ObjectStore,
    dataset: str,
    partition: str,
    run_id: str,
    *,
    ttl_s: float = DEFAULT_TTL_S,
    run_alive: RunAlive | None = None,
) -> Iterator[Lease]:
    """Hold the partition's lease during the block, after checking no maintenance is running."""
    with Lease(store, dataset, partition, run_id, ttl_s=ttl_s, run_alive=run_alive) as lease:
        maintenance = read_state(store, dataset, MAINTENANCE)
        if (
            maintenance is not None
            and maintenance.held
            and takeover_reason(maintenance, ttl_s=ttl_s, run_alive=run_alive) is None
        ):
            raise PartitionBusyError(
                f"{dataset}: lake maintenance is running ({maintenance.holder}); retry later"
            )
        yield lease
