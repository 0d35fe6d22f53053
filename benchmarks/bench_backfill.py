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

Prints, per arm: runs created per second (launch to the last run created), drain (launch to the
last run finished), runs finished per second, per-run wall time (start to end) and queue wait,
the most runs in progress at once, and the machine. Writes benchmarks/out/bench_backfill.json.
Usage: python benchmarks/bench_backfill.py [--plates 120] [--arms postgres,sqlite,default-queue,single-run]
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
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import dagster  # noqa: E402
from dagster import DagsterInstance, RunsFilter  # noqa: E402

from imaging_assets_tests.deployment.postgres import PostgresServer  # noqa: E402
from imaging_assets_tests.deployment.stack import (  # noqa: E402
    DeploymentStack,
    native_instance_config,
)
from imaging_assets_tests.servers import BACKFILL_STATUS, LAUNCH_BACKFILL, S3Server  # noqa: E402

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


def run_arm(
    name: str, root: Path, plates: list[str], pg: PostgresServer, s3: S3Server, bucket: str
) -> dict:
    storage, asset, queue = ARMS[name]
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--plates", type=int, default=120)
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
    return 0 if all(r["succeeded"] == r["runs"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
