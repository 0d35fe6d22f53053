"""Batch runs: many partitions of a partitioned job through one queued run, one child run each.

A Dagster run costs a queue slot, a launch and a fresh process that loads the code location: about
2.5 s of a 2-core machine per plate, whatever the plate holds (benchmarks/bench_backfill.py). A
batch run pays that once for many partitions: its one op executes the partitioned job for each
partition in turn, in its own process, as a run of its own (a "child" run). So every partition
keeps what a single run gives it: its own run with its logs, its `dagster/partition` tag, the
asset materializations and checks of that partition, its lease and re-run guard, and a failed
status of its own when it fails. Dagster cannot fail one partition of a multi-partition run
without failing its neighbours (dagster-io/dagster#17836), which is why a batch is not one.

- A failing partition does not stop the batch: the others run, and the batch run fails at the
  end, naming each failed partition with its child run and first error.
- Re-executing a batch run resumes it: partitions whose child run succeeded under the same root
  batch run are not run again.
- A partition with a run of its job in flight elsewhere is skipped (and counted as busy).
- A child whose batch run died is failed by run monitoring (run_launcher.py): its health is the
  health of the batch run that executes it.
- The run queue counts a child as a run in progress (Dagster counts every active run): a batch
  run at work holds two of `max_concurrent_runs`. Children carry the partition's tag (so a queued
  run of the same partition waits for them) but not the batch run's other tags: the per-source
  limit counts the batch run once.
"""

import resource
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dagster import (
    Config,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    Failure,
    JobDefinition,
    MetadataValue,
    OpExecutionContext,
    Output,
    PermissiveConfig,
    RunsFilter,
    in_process_executor,
    job,
    multi_or_in_process_executor,
    op,
)
from dagster._core.definitions.reconstruct import ReconstructableJob, ReconstructableRepository
from dagster._core.execution.api import execute_run
from dagster._core.remote_origin import RemoteJobOrigin
from dagster._utils.hosted_user_process import recon_repository_from_origin
from pydantic import Field

from imaging_assets.defs.common.runs import IN_FLIGHT, first_error

BATCH_RUN_TAG = "imaging_assets/batch_run"  # on a child run: the batch run that executes it
BATCH_ROOT_TAG = "imaging_assets/batch_root"  # on a child run: its batch's root run (resumes)
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}
BATCH_OP = "run_partitions"
BATCH_OP_CONFIG_PATH = ("ops", BATCH_OP, "config")  # where a batch run's config lists partitions
LOG_EVERY_S = 10.0


class ChildRunConfig(PermissiveConfig):
    """Any run config: what every partition's run gets (ops, resources, execution)."""


class PartitionBatchConfig(Config):
    """Which partitions a batch run executes, and the run config each partition's run gets."""

    partitions: list[str] = Field(description="Partition keys, executed in this order")
    run_config: ChildRunConfig = Field(
        default_factory=ChildRunConfig,
        description=(
            "Run config of every partition's run (e.g. ops.site_images.config); each runs "
            "in the batch's process unless `execution` says otherwise"
        ),
    )


@dataclass(frozen=True)
class PartitionOutcome:
    """What became of one partition of a batch."""

    partition: str
    status: str  # "succeeded", "failed", "busy" (a run of it is in flight), "done" (resumed)
    run_id: str | None = None
    seconds: float = 0.0
    error: str | None = None


@dataclass
class BatchReport:
    """The outcomes of a batch, in order, with counts and the rate a reader checks first."""

    outcomes: list[PartitionOutcome] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, status: str) -> int:
        return sum(outcome.status == status for outcome in self.outcomes)

    def failed(self) -> list[PartitionOutcome]:
        return [outcome for outcome in self.outcomes if outcome.status == "failed"]

    def partitions_per_second(self) -> float:
        ran = self.count("succeeded") + self.count("failed")
        return round(ran / self.seconds, 2) if self.seconds else 0.0

    def metadata(self) -> dict[str, Any]:
        failed = self.failed()
        rows = "\n".join(
            f"| {o.partition} | {o.run_id} | {(o.error or '').replace('|', '/')[:200]} |"
            for o in failed[:100]
        )
        return {
            "partitions": len(self.outcomes),
            "succeeded": self.count("succeeded"),
            "failed": len(failed),
            "busy": self.count("busy"),
            "done_before": self.count("done"),
            "seconds": round(self.seconds, 2),
            "partitions_per_second": self.partitions_per_second(),
            # the process runs its partitions one after another: what a pod for it needs
            "peak_rss_mb": peak_rss_mb(),
            "failures": MetadataValue.md(
                "| partition | run | first error |\n|---|---|---|\n" + rows if failed else "none"
            ),
            "busy_partitions": MetadataValue.json(
                [o.partition for o in self.outcomes if o.status == "busy"][:200]
            ),
        }


def peak_rss_mb() -> float:
    """This process's peak resident memory so far (Linux reports kB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def child_job(
    batch_run: DagsterRun, job_name: str, fallback: tuple[str, str] | None
) -> ReconstructableJob:
    """The partitioned job, reconstructable from the code the batch run itself was loaded from
    (a run started by the daemon or the web UI); `fallback` (module, attribute) serves runs that
    have no code origin (execute_in_process)."""
    if batch_run.job_code_origin is not None:
        repository = recon_repository_from_origin(batch_run.job_code_origin.repository_origin)
    elif fallback is not None:
        repository = ReconstructableRepository.for_module(*fallback)
    else:
        raise Failure(
            f"batch run {batch_run.run_id} has no code origin to run {job_name} from: launch it "
            "from the web UI, a schedule or `dagster job launch`"
        )
    recon = repository.get_reconstructable_job(job_name)
    load_data = recon.repository.get_definition().repository_load_data
    return recon.with_repository_load_data(load_data)


def child_tags(batch_run: DagsterRun, partition: str) -> dict[str, str]:
    root = batch_run.root_run_id or batch_run.run_id
    return {
        "dagster/partition": partition,
        BATCH_RUN_TAG: batch_run.run_id,
        BATCH_ROOT_TAG: root,
    }


def execute_child(
    instance: DagsterInstance,
    recon: ReconstructableJob,
    batch_run: DagsterRun,
    run_config: Mapping[str, Any],
    tags: Mapping[str, str],
) -> DagsterRun:
    """One partition's run of the job, created with the batch run's origins (so the web UI can
    re-execute it like any other run) and executed in this process."""
    job_def = recon.get_definition()
    remote_origin = None
    if batch_run.remote_job_origin is not None:
        remote_origin = RemoteJobOrigin(
            repository_origin=batch_run.remote_job_origin.repository_origin,
            job_name=job_def.name,
        )
    run = instance.create_run_for_job(
        job_def=job_def,
        run_config=run_config,
        tags={**job_def.run_tags, **tags},
        job_code_origin=recon.get_python_origin(),
        remote_job_origin=remote_origin,
        repository_load_data=recon.repository.repository_load_data,
    )
    execute_run(recon, run, instance, raise_on_error=False)
    return instance.get_run_by_id(run.run_id) or run


def partitions_in_flight(instance: DagsterInstance, job_name: str, partition: str | None = None):
    """Partitions (or just `partition`) with a run of the job queued, starting or running
    (children included)."""
    tags = {"dagster/partition": partition} if partition is not None else None
    runs = instance.get_runs(filters=RunsFilter(job_name=job_name, statuses=IN_FLIGHT, tags=tags))
    return {run.tags.get("dagster/partition") for run in runs} - {None}


def succeeded_in_batch(instance: DagsterInstance, job_name: str, root_run_id: str) -> set[str]:
    """Partitions whose child run succeeded under this root batch run (a re-execution skips them)."""
    runs = instance.get_runs(
        filters=RunsFilter(
            job_name=job_name,
            tags={BATCH_ROOT_TAG: root_run_id},
            statuses=[DagsterRunStatus.SUCCESS],
        )
    )
    return {run.tags.get("dagster/partition") for run in runs} - {None}


def listed_partitions(batch_run: DagsterRun) -> list[str]:
    """The partitions a batch run's config lists (none for a run of another job)."""
    config: Any = batch_run.run_config or {}
    for part in BATCH_OP_CONFIG_PATH:
        config = config.get(part, {}) if isinstance(config, dict) else {}
    partitions = config.get("partitions", []) if isinstance(config, dict) else []
    return [key for key in partitions if isinstance(key, str)]


def batch_run_config(partitions: list[str], run_config: Mapping[str, Any] | None = None) -> dict:
    """The run config of a batch run of these partitions."""
    config: dict[str, Any] = {"partitions": list(partitions)}
    if run_config:
        config["run_config"] = dict(run_config)
    return {"ops": {BATCH_OP: {"config": config}}}


def hold_database_connections(instance: DagsterInstance) -> None:
    """Keep a pooled connection per storage for the rest of this process. Dagster's Postgres
    storages connect anew for every statement (NullPool): 39 connections per child run, half of a
    cheap child's wall time (0.69 s -> 0.22 s a child with the pool, benchmarks/bench_backfill.py).
    The web UI's own switch does this; with SQLite it does nothing."""
    instance.optimize_for_webserver(statement_timeout=0, pool_recycle=3600, max_overflow=2)


def run_batch(
    context: OpExecutionContext,
    config: PartitionBatchConfig,
    job_name: str,
    fallback: tuple[str, str] | None,
) -> BatchReport:
    """Every partition of the batch, one child run each; failures are recorded, not raised."""
    instance = context.instance
    batch_run = context.dagster_run
    recon = child_job(batch_run, job_name, fallback)
    hold_database_connections(instance)
    # in this process, unless the job names its own executor (then its config is the job's)
    in_process = (
        IN_PROCESS if recon.get_definition().executor_def is multi_or_in_process_executor else {}
    )
    run_config = {**in_process, **config.run_config.model_dump()}
    done = succeeded_in_batch(instance, job_name, batch_run.root_run_id or batch_run.run_id)
    report = BatchReport()
    partitions = list(dict.fromkeys(config.partitions))  # each once, in the order listed
    total = len(partitions)
    started = last_log = time.perf_counter()
    context.log.info(f"{total} partitions of {job_name}, one run each, in this process")
    for index, partition in enumerate(partitions, start=1):
        if partition in done:
            report.outcomes.append(PartitionOutcome(partition, "done"))
            continue
        if partitions_in_flight(instance, job_name, partition):
            context.log.warning(f"{partition}: a run of {job_name} is in flight; skipped")
            report.outcomes.append(PartitionOutcome(partition, "busy"))
            continue
        began = time.perf_counter()
        tags = child_tags(batch_run, partition)
        try:
            child = execute_child(instance, recon, batch_run, run_config, tags)
        except Exception as error:  # refused before it ran (config, unknown partition)
            message = f"{type(error).__name__}: {str(error).strip().splitlines()[0][:300]}"
            context.log.error(f"{partition}: not run: {message}")
            report.outcomes.append(
                PartitionOutcome(partition, "failed", None, time.perf_counter() - began, message)
            )
            continue
        seconds = time.perf_counter() - began
        if child.status == DagsterRunStatus.SUCCESS:
            report.outcomes.append(PartitionOutcome(partition, "succeeded", child.run_id, seconds))
        else:
            error = first_error(instance, child.run_id) or f"run ended {child.status.value}"
            context.log.error(f"{partition}: run {child.run_id} failed: {error}")
            report.outcomes.append(
                PartitionOutcome(partition, "failed", child.run_id, seconds, error)
            )
        now = time.perf_counter()
        if now - last_log >= LOG_EVERY_S or index == total:
            last_log = now
            rate = (report.count("succeeded") + report.count("failed")) / max(now - started, 1e-9)
            context.log.info(
                f"{index}/{total} partitions: {report.count('succeeded')} succeeded, "
                f"{report.count('failed')} failed, {report.count('busy')} busy "
                f"({rate:.2f}/s, peak RSS {peak_rss_mb():.0f} MB)"
            )
    report.seconds = time.perf_counter() - started
    return report


def partition_batch_job(
    name: str,
    job_name: str,
    description: str,
    fallback: tuple[str, str] | None = None,
    tags: Mapping[str, str] | None = None,
) -> JobDefinition:
    """A job whose runs execute `job_name` for each listed partition (see the module docstring);
    `fallback` (module, attribute) names the code for runs without a code origin."""

    @op(
        name=BATCH_OP,
        description=f"Runs {job_name} for each listed partition, one child run each.",
    )
    def run_partitions(context: OpExecutionContext, config: PartitionBatchConfig) -> Output:
        report = run_batch(context, config, job_name, fallback)
        metadata = report.metadata()
        failed = report.failed()
        if failed:
            named = "; ".join(f"{o.partition} (run {o.run_id}: {o.error})" for o in failed[:20])
            raise Failure(
                description=(
                    f"{len(failed)} of {len(report.outcomes)} partitions of {job_name} failed: "
                    f"{named}{' ...' if len(failed) > 20 else ''}. The other partitions' runs "
                    "are not affected; re-executing this run runs only what did not succeed"
                ),
                metadata=metadata,
            )
        context.log.info(
            f"{report.count('succeeded')} partitions succeeded, {report.count('busy')} busy, "
            f"{report.count('done')} done before, at {report.partitions_per_second()}/s"
        )
        return Output(None, metadata=metadata)

    # one op: a step process of its own would only add a process start
    @job(
        name=name, description=description, tags=dict(tags or {}), executor_def=in_process_executor
    )
    def batch_job():
        run_partitions()

    return batch_job
