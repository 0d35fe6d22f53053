"""A lease on one partition of a dataset, held while a run writes it, that a crash never strands.

Why a lease at all: pylance 14 accepts two concurrent merge_insert commits of a partition that has
no rows yet (both are pure inserts), so two first runs of one plate would duplicate it.

How it stays safe with nothing but "create if absent" (O_EXCL/link locally, If-None-Match on S3):
every state change is the creation of the NEXT numbered object under
`_leases/<dataset>/<partition>/`, so among any number of contenders exactly one wins each
generation, also when taking over a dead holder's lease (no delete-then-create window). The
highest generation is the lease's state: "held" (with its holder: Dagster run, host, process, and
a heartbeat time) or "released".

Why a crash never blocks the partition: the holder renews every ttl/4 seconds from a background
thread, and every renewal is the creation of the next generation (so a renewal can never re-create
an object a takeover removed). A contender takes the lease over at once when the holder's run is
known to be finished (the Dagster instance says so; run monitoring marks dead runs failed), when
the holder is an earlier attempt of the contender's own run, when the holder's process is gone
from this very host, or when the content is unreadable; otherwise when the newest generation is
older than the TTL (90 s by default) by the STORE's clock (S3's LastModified against its Date, or
the file's mtime): hosts whose clocks disagree still agree on that age. A re-run meeting a lease
whose holder is not known to be alive waits for it to expire rather than failing.

Fencing: a holder commits only right after `fence()` created the next generation and saw, in a
fresh listing, that it is the newest one. A holder that was frozen (a VM pause, a stalled node)
while others took the lease over finds a newer generation (the newest is never pruned) and does
not commit; one that could not renew for ttl/2 by its own monotonic clock stops by itself, before
any contender may take over.
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
TTL_ENV = "IMAGING_ASSETS_LEASE_TTL_S"
FUTURE_TOLERANCE_S = 60.0  # a heartbeat dated this far ahead of the store's clock is unbelievable
MAINTENANCE = "_maintenance"  # the pseudo-partition that lake maintenance holds


def default_ttl_s() -> float:
    """The lease TTL: $IMAGING_ASSETS_LEASE_TTL_S (read when a lease is made), else 90 s."""
    return float(os.environ.get(TTL_ENV, "90"))


DEFAULT_TTL_S = default_ttl_s()

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
    """What the highest generation says; `content` is None when it could not be parsed; `age`
    is the seconds since it was written by the store's clock (None: the store cannot tell)."""

    generation: int
    content: dict | None
    age: float | None = None

    @property
    def held(self) -> bool:
        return self.content is None or self.content.get("state") != "released"

    @property
    def holder(self) -> Holder | None:
        try:
            return Holder(**self.content["holder"])  # type: ignore[index]
        except (TypeError, KeyError, ValueError):
            return None

    def heartbeat_age(self, now: float | None = None) -> float | None:
        """Seconds since the holder last renewed: the store's clock when it tells, else this
        host's clock against the time written in the lease (None: no valid time)."""
        if self.age is not None:
            return self.age
        try:
            renewed = float(self.content.get("renewed_at"))  # type: ignore[union-attr]
        except (TypeError, ValueError, AttributeError):
            return None
        return (time.time() if now is None else now) - renewed


def _generations(store: ObjectStore, dataset: str, partition: str) -> list[int]:
    keys = store.list_keys(lease_prefix(dataset, partition))
    return sorted(g for g in map(_generation_of, keys) if g is not None)


def read_state(store: ObjectStore, dataset: str, partition: str) -> LeaseState | None:
    """The partition's current lease state (None: never leased)."""
    while True:
        generations = _generations(store, dataset, partition)
        if not generations:
            return None
        key = _generation_key(dataset, partition, generations[-1])
        try:
            data = store.read(key).data
        except MissingObjectError:
            continue  # pruned between the listing and the read: look again
        try:
            content = json.loads(data)
            if not isinstance(content, dict):
                content = None
        except (ValueError, UnicodeDecodeError):
            content = None
        return LeaseState(generations[-1], content, store.age(key))


def takeover_reason(
    state: LeaseState,
    *,
    ttl_s: float,
    my_run_id: str | None = None,
    run_alive: RunAlive | None = None,
    now: float | None = None,
) -> str | None:
    """Why a held lease may be taken over now, or None while its holder must be presumed alive."""
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
    age = state.heartbeat_age(now)
    if age is None:
        return "its lease has no valid heartbeat time"
    if age < -FUTURE_TOLERANCE_S:
        return f"its heartbeat is dated {-age:.0f} s in the future"
    if age > ttl_s:
        return f"{holder.describe()} stopped renewing it {age:.0f} s ago (TTL {ttl_s:.0f} s)"
    return None


class Lease:
    """Hold with `with Lease(...):`; raises PartitionBusyError when a live holder has it.

    `wait_s`: how long to wait for a holder that is not known to be alive (its run is not in
    progress in this instance, or this instance does not know it) to stop renewing, instead of
    failing at once: a re-run after a crash elsewhere waits for the TTL, then takes over.
    """

    def __init__(
        self,
        store: ObjectStore,
        dataset: str,
        partition: str,
        run_id: str,
        *,
        ttl_s: float | None = None,
        run_alive: RunAlive | None = None,
        attempts: int = 8,
        wait_s: float | None = None,
    ) -> None:
        self.store, self.dataset, self.partition = store, dataset, partition
        self.holder = Holder.current(run_id)
        self.ttl_s = default_ttl_s() if ttl_s is None else ttl_s
        self.run_alive, self.attempts = run_alive, attempts
        self.wait_s = self.ttl_s + 15.0 if wait_s is None else wait_s
        self.generation: int | None = None
        self.took_over: str | None = None
        self._last_renewed = 0.0  # time.monotonic() of the last generation this holder created
        self._lost: str | None = None
        self._lock = threading.Lock()  # renewals and fences create generations one at a time
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    # -- acquisition ---------------------------------------------------------------------------

    def _body(self, state: str) -> bytes:
        now = time.time()
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
        deadline = time.monotonic() + self.wait_s
        races = 0
        while True:
            state = read_state(self.store, self.dataset, self.partition)
            reason = None
            if state is not None and state.held:
                reason = takeover_reason(
                    state, ttl_s=self.ttl_s, my_run_id=self.holder.run_id, run_alive=self.run_alive
                )
                if reason is None:
                    if self._holder_known_alive(state) or time.monotonic() > deadline:
                        raise self._busy(state)
                    time.sleep(min(1.0, max(0.1, self.ttl_s / 20)))  # one LIST + GET + HEAD
                    continue
            generation = 1 if state is None else state.generation + 1
            if self.store.create_exclusive(self._key(generation), self._body("held")):
                self.generation, self._last_renewed = generation, time.monotonic()
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
            races += 1  # another contender created that generation first: judge its state afresh
            if races >= self.attempts:
                raise PartitionBusyError(
                    f"{self.dataset} partition {self.partition}: lost {self.attempts} races "
                    "for the lease"
                )

    def _holder_known_alive(self, state: LeaseState) -> bool:
        holder = state.holder
        if holder is None or self.run_alive is None:
            return False
        try:
            return self.run_alive(holder.run_id) is True
        except Exception:  # the instance is advisory
            return False

    def _busy(self, state: LeaseState) -> PartitionBusyError:
        holder = state.holder
        age = state.heartbeat_age()
        left = max(0.0, self.ttl_s - (age or 0.0))
        who = holder.describe() if holder else "another run"
        run_id = holder.run_id if holder else "<run id>"
        return PartitionBusyError(
            f"{self.dataset} partition {self.partition} is being written by {who}, heartbeat "
            f"{age or 0:.0f} s ago (TTL {self.ttl_s:.0f} s). If that run is alive, wait for it; "
            f"if it is dead, its lease is taken over {left:.0f} s from now, or at once after "
            f"`imaging-assets runs fail {run_id}` marks it failed in the Dagster instance. "
            f"Lease objects: {self.store.uri(lease_prefix(self.dataset, self.partition))}"
        )

    def _prune(self, below: int) -> None:
        """Delete generations older than `below` (best effort). Never the newest two: the newest
        is what every holder compares its own generation with."""
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

    def _advance(self) -> None:
        """Create the next generation as this holder and check it is the newest; or mark lost.

        The creation fails when any other holder made that generation; the listing catches a
        newer generation made while this holder was frozen (older ones may have been pruned, so
        creating the next number can succeed below the newest)."""
        with self._lock:
            if self.generation is None or self._lost:
                return
            following = self.generation + 1
            if not self.store.create_exclusive(self._key(following), self._body("held")):
                self._lost = "a newer generation of the lease exists (it was taken over)"
                return
            newest = _generations(self.store, self.dataset, self.partition)[-1]
            if newest != following:
                self._lost = f"generation {newest} is newer than this holder's (taken over)"
                return
            self.generation, self._last_renewed = following, time.monotonic()
        self._prune(below=self.generation - 1)

    def renew(self) -> None:
        """Refresh the heartbeat; notice a takeover. Store errors are tolerated until ttl/2."""
        try:
            self._advance()
        except Exception as error:  # the store may be down: lost_reason decides
            log.warning("%s %s: lease renewal failed: %s", self.dataset, self.partition, error)

    def lost_reason(self) -> str | None:
        if self._lost:
            return self._lost
        silent = time.monotonic() - self._last_renewed
        if self.generation is not None and silent > self.ttl_s / 2:
            return f"it could not be renewed for {silent:.0f} s (TTL {self.ttl_s:.0f} s)"
        return None

    def assert_held(self) -> None:
        """Raise LeaseLostError unless this holder's generation is the newest right now: the
        fence before a commit (a store round trip, so call it just before committing)."""
        reason = self.lost_reason()
        if reason is None:
            try:
                self._advance()
            except Exception as error:
                reason = f"the store did not answer the fence ({error})"
            else:
                reason = self._lost
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
        with self._lock:
            if self.generation is None:
                return
            generation, self.generation = self.generation, None
            if self._lost:
                return  # someone else holds it now: leave their generations alone
        try:
            if self.store.create_exclusive(self._key(generation + 1), self._body("released")):
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
    ttl_s: float | None = None,
    run_alive: RunAlive | None = None,
) -> dict[str, Holder | None]:
    """Partitions of `dataset` whose lease is held by a presumably live holder."""
    ttl_s = default_ttl_s() if ttl_s is None else ttl_s
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
    ttl_s: float | None = None,
    run_alive: RunAlive | None = None,
) -> Iterator[Lease]:
    """Hold the partition's lease during the block, after checking no maintenance is running."""
    ttl_s = default_ttl_s() if ttl_s is None else ttl_s
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
