"""Fixtures of the deployment tests: a real PostgreSQL 15, the compose services run natively
against docker/dagster.yaml, and one backfill of every sample plate driven over GraphQL (with a
daemon restart in the middle) whose outcome several tests inspect.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import pytest

from imaging_assets_tests.deployment.postgres import PostgresServer, binaries_missing
from imaging_assets_tests.deployment.stack import DeploymentStack
from imaging_assets_tests.servers import BACKFILL_STATUS, LAUNCH_BACKFILL

PLATE_ASSETS = [
    "load_data",
    "sampled_sites",
    "site_images",
    "well_profiles",
    "cell_profiles",
    "cell_crops",
]
# one process per run: on a 2-core test machine a subprocess per step is slow
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}
IN_PROGRESS = ("STARTING", "STARTED", "CANCELING")
FINISHED = ("SUCCESS", "FAILURE", "CANCELED")
BACKFILL_DONE = ("COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED")

LAUNCH_RUN = """
mutation LaunchRun($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message stack }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""

RUNS_SQL = """
SELECT r.run_id, r.status, p.value, s.value, b.value
FROM runs r
LEFT JOIN run_tags p ON p.run_id = r.run_id AND p.key = 'dagster/partition'
LEFT JOIN run_tags s ON s.run_id = r.run_id AND s.key = 'imaging_assets/source'
LEFT JOIN run_tags b ON b.run_id = r.run_id AND b.key = 'dagster/backfill'
"""


@pytest.fixture(scope="session")
def postgres():
    """PostgreSQL 15 on a free loopback port for the session, stopped by PID at the end."""
    missing = binaries_missing()
    if missing:
        pytest.skip(
            f"PostgreSQL binaries not found ({', '.join(missing)}): install postgresql-15 "
            "(.ci/run does)"
        )
    with PostgresServer() as server:
        yield server


@dataclass
class RunWatcher:
    """Polls the runs table (Postgres, directly) and records the most runs in progress at once:
    overall, per plate partition and per source tag."""

    postgres: PostgresServer
    interval_s: float = 0.5
    max_in_progress: int = 0
    max_per_partition: dict[str, int] = field(default_factory=dict)
    max_per_source: dict[str, int] = field(default_factory=dict)
    polls: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def snapshot(self) -> list[tuple]:
        return self.postgres.query(RUNS_SQL)

    def _poll(self) -> None:
        rows = self.snapshot()
        running = [row for row in rows if row[1] in IN_PROGRESS]
        self.max_in_progress = max(self.max_in_progress, len(running))
        for index, target in ((2, self.max_per_partition), (3, self.max_per_source)):
            for value, count in Counter(row[index] for row in running if row[index]).items():
                target[value] = max(target.get(value, 0), count)
        self.polls += 1

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._poll()
            self._stop.wait(self.interval_s)

    def __enter__(self) -> RunWatcher:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        self._poll()


@dataclass
class DeploymentRun:
    """What happened in the deployment: the stack, the plates, the runs, the timings."""

    stack: DeploymentStack
    postgres: PostgresServer
    s3_server: object
    bucket: str
    gallery: object
    plates: list[str]
    metadata_run_id: str
    backfill_id: str
    backfill_status: str
    watcher: RunWatcher
    daemon_stop_code: int | None
    runs_started_before_restart: int
    restarted_at: float
    seconds: dict[str, float]

    def runs(self) -> list[tuple]:
        """(run_id, status, partition, source tag, backfill id) for every run."""
        return self.postgres.query(RUNS_SQL)


def _wait_for(what: str, check, timeout_s: float, stack: DeploymentStack, every_s: float = 1.0):
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{stack.logs_tail()}")
        time.sleep(every_s)


@pytest.fixture(scope="session")
def deployment(tmp_path_factory, postgres, s3_server):
    """The compose services natively against Postgres and SeaweedFS, with the tiny sample gallery
    as source and the lake on S3; `metadata_job` launched and then a backfill of every plate, the
    daemon restarted once plate runs are going. Yields a DeploymentRun; stops everything at the
    end."""
    from imaging_assets.core.s3 import S3Settings
    from imaging_assets.core.stores import S3Store
    from imaging_assets.demo.gallery import generate_gallery

    seconds: dict[str, float] = {}
    started = time.monotonic()
    root = tmp_path_factory.mktemp("deployment")
    bucket = s3_server.make_bucket(f"deployment-{uuid.uuid4().hex[:8]}")
    gallery = generate_gallery(root / "gallery", preset="tiny")
    with pytest.MonkeyPatch.context() as patch:  # the store takes credentials from boto3's chain
        patch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
        patch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
        S3Store(f"s3://{bucket}", S3Settings(endpoint_url=s3_server.endpoint_url)).upload_tree(
            gallery.root, prefix="gallery"
        )
    env = {
        **postgres.env(),
        # the variables of the compose file's x-dagster-env, pointed at the test servers
        "DAGSTER_COMPUTE_LOGS_BUCKET": bucket,
        "DAGSTER_COMPUTE_LOGS_PREFIX": "dagster-compute-logs",
        "DAGSTER_COMPUTE_LOGS_ENDPOINT": s3_server.endpoint_url,
        "AWS_ACCESS_KEY_ID": s3_server.access_key,
        "AWS_SECRET_ACCESS_KEY": s3_server.secret_key,
        "AWS_REGION": s3_server.region,
        "IMAGING_ASSETS_SOURCE_ROOT": f"s3://{bucket}/gallery/cpg0016-jump",
        "IMAGING_ASSETS_SOURCE_ENDPOINT": s3_server.endpoint_url,
        "IMAGING_ASSETS_SOURCE_ANONYMOUS": "0",
        "IMAGING_ASSETS_METADATA_ROOT": f"s3://{bucket}/gallery/metadata",
        "IMAGING_ASSETS_METADATA_ENDPOINT": s3_server.endpoint_url,
        "IMAGING_ASSETS_METADATA_ANONYMOUS": "0",
        "IMAGING_ASSETS_LAKE": f"s3://{bucket}/lake",
        "IMAGING_ASSETS_LAKE_ENDPOINT": s3_server.endpoint_url,
        "IMAGING_ASSETS_SENSOR_MAX_PLATES": "50",
        "IMAGING_ASSETS_BACKFILL_MAX_RUNS": "20",
        "IMAGING_ASSETS_PLATES_PER_RUN": "25",
    }
    seconds["gallery"] = time.monotonic() - started
    stack = DeploymentStack(root, env)
    try:
        stack.start()
        seconds["services_up"] = time.monotonic() - started
        with RunWatcher(postgres) as watcher:
            launched = stack.graphql(
                LAUNCH_RUN,
                {
                    "params": {
                        "selector": {
                            "repositoryLocationName": "imaging_assets",
                            "repositoryName": "__repository__",
                            "jobName": "metadata_job",
                        },
                        "runConfigData": IN_PROCESS,
                    }
                },
            )["launchRun"]
            assert launched["__typename"] == "LaunchRunSuccess", launched
            metadata_run_id = launched["run"]["runId"]

            def metadata_finished():
                rows = postgres.query(
                    "SELECT status FROM runs WHERE run_id = %s", (metadata_run_id,)
                )
                return rows and rows[0][0] in FINISHED and rows[0][0]

            status = _wait_for("metadata_job", metadata_finished, 300, stack)
            assert status == "SUCCESS", (status, stack.logs_tail())
            seconds["metadata_job"] = time.monotonic() - started
            plates = sorted(
                row[0]
                for row in postgres.query(
                    "SELECT partition FROM dynamic_partitions WHERE partitions_def_name = 'plates'"
                )
            )
            assert len(plates) == len(gallery.plates), plates

            launched = stack.graphql(
                LAUNCH_BACKFILL,
                {
                    "params": {
                        "assetSelection": [{"path": [name]} for name in PLATE_ASSETS],
                        "partitionNames": plates,
                        "title": "every sample plate (deployment test)",
                        "runConfigData": IN_PROCESS,
                    }
                },
            )["launchPartitionBackfill"]
            assert launched["__typename"] == "LaunchBackfillSuccess", launched
            backfill_id = launched["backfillId"]

            # Restart the daemon once plate runs are going: the backfill must resume, not repeat.
            def plate_runs_started():
                rows = watcher.snapshot()
                return [r for r in rows if r[4] == backfill_id and r[1] not in ("QUEUED",)]

            started_runs = _wait_for("the first plate run", plate_runs_started, 240, stack, 0.5)
            seconds["first_plate_run"] = time.monotonic() - started
            restarted_at = time.time()
            daemon_stop_code = stack.restart_daemon()
            seconds["daemon_restart"] = time.time() - restarted_at

            def backfill_done():
                answer = stack.graphql(BACKFILL_STATUS, {"id": backfill_id})
                status = answer["partitionBackfillOrError"].get("status")
                return status in BACKFILL_DONE and status

            backfill_status = _wait_for("the backfill", backfill_done, 480, stack, 2.0)
            seconds["backfill_done"] = time.monotonic() - started
        yield DeploymentRun(
            stack=stack,
            postgres=postgres,
            s3_server=s3_server,
            bucket=bucket,
            gallery=gallery,
            plates=plates,
            metadata_run_id=metadata_run_id,
            backfill_id=backfill_id,
            backfill_status=backfill_status,
            watcher=watcher,
            daemon_stop_code=daemon_stop_code,
            runs_started_before_restart=len(started_runs),
            restarted_at=restarted_at,
            seconds=seconds,
        )
    finally:
        stack.stop()


def runs_by_partition(rows: list[tuple]) -> dict[str, list[tuple]]:
    grouped: dict[str, list[tuple]] = defaultdict(list)
    for row in rows:
        if row[2]:
            grouped[row[2]].append(row)
    return grouped
