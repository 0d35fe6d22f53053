"""The default run launcher, plus the worker health check that run monitoring needs.

Dagster's DefaultRunLauncher starts each run in a process of the code server but cannot tell the
daemon's run monitoring whether that process still lives, so a run whose process was killed while
its code server was restarted (or replaced by `dagster dev`) stays STARTED forever, and the
`dagster/partition` limit of 1 then keeps every later run of its plate queued. This launcher
answers the health check:

- the code server that started the run (its address is the run's `dagster/grpc_info` tag) lists
  the runs it executes: listed -> RUNNING; answered without it -> FAILED (the server marks runs
  whose process died failed itself, so an unlisted STARTED run lost its server);
- a code server that does not answer, or a run it did not launch (`dagster asset materialize`
  on a laptop, killed: it stays STARTED, and a backfill of its plate then waits behind it): the
  run's process, from its engine events, on the host the run recorded (`imaging_assets/host`, set
  by the lake resource when a step starts), decides: gone -> FAILED. On another host -> RUNNING
  (nothing here can tell; the plate's lease still expires by its TTL, and `imaging-assets runs
  fail` ends the run by hand).

A child run of a batch run (defs/common/batches.py) runs in its batch run's process: its health is
the batch run's, and once the batch run has ended a child still STARTED has lost its worker.

Enable it in dagster.yaml with `run_launcher: {module: imaging_assets.defs.common.run_launcher,
class: LocalRunLauncher}` together with `run_monitoring: {enabled: true}`.
"""

from __future__ import annotations

import json
import os
import socket

from dagster import DagsterEventType, DagsterRun
from dagster._core.launcher import DefaultRunLauncher
from dagster._core.launcher.base import CheckRunHealthResult, WorkerStatus
from dagster._core.storage.tags import GRPC_INFO_TAG
from dagster._grpc.types import GetCurrentRunsResult
from dagster._serdes import deserialize_value

from imaging_assets.defs.common.batches import BATCH_RUN_TAG

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "0.0.0.0", socket.gethostname()}
HOST_TAG = "imaging_assets/host"  # where the run's steps run (defs/common/stores.py sets it)


class BatchChildrenHealth:
    """Mixin for a run launcher: a batch run's child is as healthy as its batch run (it runs in
    the batch run's process, container or pod); every other run is checked by the launcher."""

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        batch = batch_run_of(self._instance, run)  # type: ignore[attr-defined]
        if batch is None:
            return super().check_run_worker_health(run)  # type: ignore[misc]
        if isinstance(batch, CheckRunHealthResult):
            return batch
        return self.check_run_worker_health(batch)


class _ProcessHealthLauncher(DefaultRunLauncher):
    """DefaultRunLauncher whose runs' workers run monitoring can check."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        client = self._get_grpc_client_for_termination(run.run_id)
        if client is None:
            return self._by_pid(run, "no code server launched it")
        try:
            answer = deserialize_value(client.get_current_runs(), GetCurrentRunsResult)
        except Exception as error:  # the code server is gone or unreachable
            return self._by_pid(run, f"its code server does not answer ({type(error).__name__})")
        if run.run_id in answer.current_runs:
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        return CheckRunHealthResult(
            WorkerStatus.FAILED, "the code server that started the run no longer runs it"
        )

    def _by_pid(self, run: DagsterRun, why: str) -> CheckRunHealthResult:
        host = run.tags.get(HOST_TAG) or json.loads(run.tags.get(GRPC_INFO_TAG, "{}")).get("host")
        pid = _worker_pid(self._instance, run.run_id)
        if host not in LOCAL_HOSTS or pid is None:
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"{why}; cannot tell from here")
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return CheckRunHealthResult(WorkerStatus.FAILED, f"{why} and its process {pid} is gone")
        except PermissionError:
            pass
        return CheckRunHealthResult(WorkerStatus.RUNNING, f"{why}; its process {pid} lives")


class LocalRunLauncher(BatchChildrenHealth, _ProcessHealthLauncher):
    """The default launcher with the worker health check above, batch runs' children included."""


def batch_run_of(instance, run: DagsterRun) -> DagsterRun | CheckRunHealthResult | None:
    """For a child of a batch run: the batch run whose worker runs it, or the verdict when that
    needs no worker check (the batch run is gone or has ended). None for any other run."""
    batch_id = run.tags.get(BATCH_RUN_TAG)
    if batch_id is None:
        return None
    batch = instance.get_run_by_id(batch_id)
    if batch is None:
        return CheckRunHealthResult(WorkerStatus.FAILED, f"its batch run {batch_id} is gone")
    if batch.is_finished:
        return CheckRunHealthResult(
            WorkerStatus.FAILED, f"its batch run {batch_id} ended {batch.status.value}"
        )
    return batch


def _worker_pid(instance, run_id: str) -> int | None:
    """The pid of the process that runs the run: the first engine event naming one ("Started
    process for run", or the executor's "Executing steps ... (pid: N)" of an in-process run)."""
    records = instance.get_records_for_run(
        run_id, of_type=DagsterEventType.ENGINE_EVENT, limit=20
    ).records
    for record in records:
        event = record.event_log_entry.dagster_event
        data = getattr(event, "engine_event_data", None) if event else None
        pid = data.metadata.get("pid") if data is not None else None
        value = getattr(pid, "value", pid)
        if value is not None:
            return int(value)
    return None
