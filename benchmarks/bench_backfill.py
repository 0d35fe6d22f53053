"""Benchmark: how fast the deployment turns a backfill of many plates into runs and drains them.

The services of docker/docker-compose.yml run natively, as in imaging_assets_tests/deployment
(docker/dagster.yaml with the DefaultRunLauncher: each run a process started by the code server),
on a real PostgreSQL 15 (fsync on) and SeaweedFS (compute logs). The code location is
benchmarks/backfill_location.py: cheap assets over the project's `plates` partitions, so every
run is a real, queued, daemon-launched run that does almost nothing and the figures are what the
deployment itself costs per plate. PLATES partitions are registered, a backfill of all of them is
launched over GraphQL and timed. Arms, in one invocation:

  (a) postgres       the deployment as shipped: one run per plate, docker/dagster.yaml's queue
                     (limits, threaded dequeue every second)
  (b) sqlite         reference: the same with SQLite storage (the repository's dagster.yaml)
  (c) default-queue  reference: (a) with the run queue's defaults (checked every 5 s, runs
                     launched one by one)
  (d) single-run     lever: the same plates in one run (BackfillPolicy.single_run), Postgres
  (e) batched        the project's batch runs (defs/common/batches.py, as plate_batch_job):
                     --batched-plates plates (default 2,525, all of JUMP) in runs of
                     --plates-per-run plates of one source each, every plate still a run of
                     its own (a child run in the batch's process); Postgres, queue as shipped

Prints, per arm: runs created per second (launch to the last run created), drain (launch to the
last run finished), runs finished per second, per-run wall time (start to end) and queue wait,
the most runs in progress at once, and the machine. Writes benchmarks/out/bench_backfill.json.
Usage: python benchmarks/bench_backfill.py [--plates 120] [--batched-plates 2525]
       [--plates-per-run 50] [--arms postgres,sqlite,default-queue,single-run,batched]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from itertools import zip_longest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import dagster  # noqa: E402
from dagster import DagsterInstance, RunsFilter  # noqa: E402

from imaging_assets.defs.common.batches import batch_run_config  # noqa: E402
from imaging_assets_tests.deployment.postgres import PostgresServer  # noqa: E402
from imaging_assets_tests.deployment.stack import (  # noqa: E402
    DeploymentStack,
    native_instance_config,
)
from imaging_assets_tests.servers import (  # noqa: E402
    BACKFILL_STATUS,
    LAUNCH_BACKFILL,
    LAUNCH_RUN,
    REPOSITORIES,
    S3Server,
)

LOCATION = Path(__file__).resolve().with_name("backfill_location.py")
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}
FINISHED = {"SUCCESS", "FAILURE", "CANCELED"}
IN_PROGRESS = {"STARTING", "STARTED", "CANCELING"}

# arm: (storage, asset, QueuedRunCoordinator config; None keeps docker/dagster.yaml's)
ARMS = {
    "postgres": ("postgres", "plate_marker", None),
    "sqlite": ("sqlite", "plate_marker", None),
    "default-queue": ("postgres", "plate_marker", {}),
    "single-run": ("postgres", "plate_marker_single_run", None),
    "batched": ("postgres", "plate_marker_batch_job", None),
}


def machine() -> dict:
    model = platform.processor() or "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "machine": platform.machine(),
        "python": platform.python_version(),
        "dagster": dagster.__version__,
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def arm_stack(
    name: str, root: Path, pg: PostgresServer, s3: S3Server, bucket: str
) -> DeploymentStack:
    """The deployment of one arm, its own database and compute-log prefix, started."""
    storage, _, queue = ARMS[name]
    config = native_instance_config()
    if queue is not None:
        config["run_coordinator"]["config"] = dict(queue)
    database = pg.create_database(f"bench_{name.replace('-', '_')}")
    if storage == "sqlite":
        config["storage"] = {"sqlite": {"base_dir": {"env": "DAGSTER_HOME"}}}
    env = {
        **pg.env(database),
        "DAGSTER_COMPUTE_LOGS_BUCKET": bucket,
        "DAGSTER_COMPUTE_LOGS_PREFIX": f"compute-logs-{name}",
        "DAGSTER_COMPUTE_LOGS_ENDPOINT": s3.endpoint_url,
        "AWS_ACCESS_KEY_ID": s3.access_key,
        "AWS_SECRET_ACCESS_KEY": s3.secret_key,
        "AWS_REGION": s3.region,
    }
    stack = DeploymentStack(root / name, env, config, code_target=["-f", str(LOCATION)])
    os.environ.update({**env, "DAGSTER_HOME": str(stack.home)})
    stack.start()
    return stack


def run_arm(
    name: str, root: Path, plates: list[str], pg: PostgresServer, s3: S3Server, bucket: str
) -> dict:
    storage, asset, _ = ARMS[name]
    stack = arm_stack(name, root, pg, s3, bucket)
    try:
        with DagsterInstance.from_config(str(stack.home)) as instance:
            instance.add_dynamic_partitions("plates", plates)
            expected = 1 if asset.endswith("single_run") else len(plates)
            launched_at = time.monotonic()
            answer = stack.graphql(
                LAUNCH_BACKFILL,
                {
                    "params": {
                        "assetSelection": [{"path": [asset]}],
                        "partitionNames": plates,
                        "title": f"bench {name}",
                        "runConfigData": IN_PROCESS,
                    }
                },
            )["launchPartitionBackfill"]
            assert answer["__typename"] == "LaunchBackfillSuccess", answer
            backfill_id = answer["backfillId"]
            first_run = all_created = drained = completed = None
            max_in_progress, last_status_check, status = 0, 0.0, None
            while completed is None:
                now = time.monotonic()
                if now - launched_at > 3600:
                    raise RuntimeError(f"{name}: backfill not done after an hour ({status})")
                records = instance.get_run_records(
                    RunsFilter(tags={"dagster/backfill": backfill_id})
                )
                statuses = [record.dagster_run.status.value for record in records]
                max_in_progress = max(max_in_progress, sum(s in IN_PROGRESS for s in statuses))
                if records and first_run is None:
                    first_run = now
                if len(records) >= expected and all_created is None:
                    all_created = now
                if all_created and drained is None and all(s in FINISHED for s in statuses):
                    drained = now
                if now - last_status_check > 2:
                    last_status_check = now
                    status = stack.graphql(BACKFILL_STATUS, {"id": backfill_id})[
                        "partitionBackfillOrError"
                    ]["status"]
                    if status not in ("REQUESTED",):
                        completed = now
                time.sleep(0.5)
            records = instance.get_run_records(RunsFilter(tags={"dagster/backfill": backfill_id}))
    finally:
        stack.stop()
    runs = [record.dagster_run for record in records]
    walls = [r.end_time - r.start_time for r in records if r.start_time and r.end_time]
    waits = [
        r.start_time - r.create_timestamp.timestamp()
        for r in records
        if r.start_time and r.create_timestamp
    ]
    created_s = all_created - launched_at
    drain_s = drained - launched_at
    return {
        "arm": name,
        "storage": storage,
        "asset": asset,
        "plates": len(plates),
        "runs": len(runs),
        "succeeded": sum(r.status.value == "SUCCESS" for r in runs),
        "backfill_status": status,
        "first_run_created_s": round(first_run - launched_at, 1),
        "all_runs_created_s": round(created_s, 1),
        "runs_created_per_s": round(len(runs) / created_s, 2),
        "drained_s": round(drain_s, 1),
        "backfill_completed_s": round(completed - launched_at, 1),
        "runs_finished_per_s": round(len(runs) / drain_s, 3),
        # steady state: from the last run created to the last run finished
        "runs_per_s_after_created": round(len(runs) / max(drain_s - created_s, 0.1), 3),
        "plates_per_s": round(len(plates) / drain_s, 3),
        "run_wall_s_median": round(statistics.median(walls), 2) if walls else None,
        "queue_wait_s_median": round(statistics.median(waits), 1) if waits else None,
        "max_in_progress": max_in_progress,
    }


def batches_of(plates: list[str], per_run: int) -> list[list[str]]:
    """Batches of at most `per_run` plates, each of one source (the queue limits runs per source)."""
    by_source: dict[str, list[str]] = {}
    for plate in plates:
        by_source.setdefault(plate.split("__", 1)[0], []).append(plate)
    per_source = [
        [keys[i : i + per_run] for i in range(0, len(keys), per_run)] for keys in by_source.values()
    ]
    # interleaved, so that every source has a batch in flight
    return [batch for turn in zip_longest(*per_source) for batch in turn if batch]


def run_batched_arm(
    root: Path, plates: list[str], per_run: int, pg: PostgresServer, s3: S3Server, bucket: str
) -> dict:
    """Arm (e): every plate a child run of a batch run; batch runs queued over GraphQL."""
    name = "batched"
    stack = arm_stack(name, root, pg, s3, bucket)
    batches = batches_of(plates, per_run)
    try:
        with DagsterInstance.from_config(str(stack.home)) as instance:
            instance.add_dynamic_partitions("plates", plates)
            [repository] = stack.graphql(REPOSITORIES)["repositoriesOrError"]["nodes"]
            selector = {
                "repositoryLocationName": repository["location"]["name"],
                "repositoryName": repository["name"],
                "jobName": "plate_marker_batch_job",
            }
            launched_at = time.monotonic()
            for batch in batches:
                config = batch_run_config(batch)  # the batch job runs in process
                tags = [{"key": "imaging_assets/source", "value": batch[0].split("__", 1)[0]}]
                answer = stack.graphql(
                    LAUNCH_RUN,
                    {
                        "executionParams": {
                            "selector": selector,
                            "runConfigData": config,
                            "executionMetadata": {"tags": tags},
                        }
                    },
                )["launchRun"]
                assert answer["__typename"] == "LaunchRunSuccess", answer
            submitted = time.monotonic()
            max_in_progress, drained = 0, None
            while drained is None:
                if time.monotonic() - launched_at > 3600:
                    raise RuntimeError("batched: not drained after an hour")
                records = instance.get_run_records(RunsFilter(job_name="plate_marker_batch_job"))
                statuses = [record.dagster_run.status.value for record in records]
                max_in_progress = max(max_in_progress, sum(s in IN_PROGRESS for s in statuses))
                if len(records) == len(batches) and all(s in FINISHED for s in statuses):
                    drained = time.monotonic()
                time.sleep(0.5)
            children = [
                record.dagster_run
                for record in instance.get_run_records(RunsFilter(job_name="plate_marker_job"))
            ]
            batch_records = instance.get_run_records(RunsFilter(job_name="plate_marker_batch_job"))
            materialized = len(
                instance.get_materialized_partitions(dagster.AssetKey("plate_marker"))
            )
    finally:
        stack.stop()
    walls = [r.end_time - r.start_time for r in batch_records if r.start_time and r.end_time]
    drain_s = drained - launched_at
    return {
        "arm": name,
        "storage": "postgres",
        "asset": "plate_marker (plate_marker_batch_job)",
        "plates": len(plates),
        "plates_per_run": per_run,
        "runs": len(batch_records),
        "succeeded": sum(r.dagster_run.status.value == "SUCCESS" for r in batch_records),
        "child_runs": len(children),
        "child_runs_succeeded": sum(run.status.value == "SUCCESS" for run in children),
        "partitions_materialized": materialized,
        "first_run_created_s": 0.0,
        "all_runs_created_s": round(submitted - launched_at, 1),
        "runs_created_per_s": round(len(batches) / max(submitted - launched_at, 1e-9), 2),
        "drained_s": round(drain_s, 1),
        "runs_finished_per_s": round(len(batch_records) / drain_s, 3),
        "runs_per_s_after_created": round(len(plates) / drain_s, 3),
        "plates_per_s": round(len(plates) / drain_s, 3),
        "run_wall_s_median": round(statistics.median(walls), 2) if walls else None,
        "queue_wait_s_median": None,
        "max_in_progress": max_in_progress,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plates", type=int, default=120)
    parser.add_argument("--batched-plates", type=int, default=2525)
    parser.add_argument("--plates-per-run", type=int, default=50)
    parser.add_argument("--arms", default=",".join(ARMS))
    args = parser.parse_args()
    arms = [arm.strip() for arm in args.arms.split(",") if arm.strip()]
    plates = [f"source_{i % 5}__BENCH{i:05d}" for i in range(args.plates)]
    info = machine()
    print(
        f"machine: {info['cores']} cores, {info['cpu']}, {info['machine']}, Python "
        f"{info['python']}, dagster {info['dagster']}, load {info['load_average_at_start']}"
    )
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-backfill-") as tmp:
        root = Path(tmp)
        with PostgresServer(fsync=True) as pg, S3Server(root / "seaweedfs") as s3:
            bucket = s3.make_bucket("bench-backfill")
            for arm in arms:
                started = time.monotonic()
                if arm == "batched":
                    many = [f"source_{i % 5}__BENCH{i:05d}" for i in range(args.batched_plates)]
                    result = run_batched_arm(root, many, args.plates_per_run, pg, s3, bucket)
                else:
                    result = run_arm(arm, root, plates, pg, s3, bucket)
                result["arm_seconds"] = round(time.monotonic() - started, 1)
                results.append(result)
                print(json.dumps(result))
    info["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print()
    print(
        "| arm | runs | runs created/s | first run at | drained | runs finished/s | "
        "steady runs/s | run wall (median) | queue wait (median) | most in progress |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['arm']} ({r['storage']}) | {r['runs']} ({r['succeeded']} ok) | "
            f"{r['runs_created_per_s']} | {r['first_run_created_s']} s | {r['drained_s']} s | "
            f"{r['runs_finished_per_s']} | {r['runs_per_s_after_created']} | "
            f"{r['run_wall_s_median']} s | "
            f"{r['queue_wait_s_median']} s | {r['max_in_progress']} |"
        )
    by_arm = {r["arm"]: r for r in results}
    if "postgres" in by_arm:
        arm = by_arm["postgres"]
        minutes = (arm["first_run_created_s"] + 2500 / arm["runs_per_s_after_created"]) / 60
        print(
            f"\n2,500 plates, one run each, at the steady rate of (a) (orchestration only, runs "
            f"that do nothing): {minutes:.0f} min"
        )
    out = ROOT / "benchmarks" / "out"
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_backfill.json").write_text(
        json.dumps({"machine": info, "results": results}, indent=2)
    )
    print(f"load average at end: {info['load_average_at_end']}")
    if "batched" in by_arm:
        arm = by_arm["batched"]
        print(
            f"\nbatched: {arm['plates']} plates in {arm['runs']} runs of {arm['plates_per_run']}: "
            f"{arm['plates_per_s']} plates/s (target >= 5); {arm['child_runs_succeeded']} plate "
            f"runs succeeded, {arm['partitions_materialized']} partitions materialized"
        )
        if "postgres" in by_arm:
            ratio = arm["plates_per_s"] / max(by_arm["postgres"]["plates_per_s"], 1e-9)
            print(f"against one run per plate (a) in the same invocation: {ratio:.1f}x")
    return 0 if all(r["succeeded"] == r["runs"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
