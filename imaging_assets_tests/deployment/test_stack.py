"""The deployment of docker/ run natively: webserver, daemon and code server on PostgreSQL 15 and
SeaweedFS with docker/dagster.yaml (run launcher swapped, see stack.py). `metadata_job` and a
backfill of every sample plate are launched over GraphQL; the daemon is restarted mid-backfill.
"""

from __future__ import annotations

import re

import pytest

from imaging_assets_tests.deployment.conftest import IN_PROGRESS, runs_by_partition
from imaging_assets_tests.deployment.stack import DAEMON_SERVICE, load_yaml

pytestmark = [pytest.mark.s3, pytest.mark.slow]


def _run_limits(instance_config: dict) -> tuple[int, dict[str, int]]:
    runs = instance_config["concurrency"]["runs"]
    per_tag = {
        limit["key"]: limit["limit"]
        for limit in runs["tag_concurrency_limits"]
        if isinstance(limit.get("value"), dict) and limit["value"].get("applyLimitPerUniqueValue")
    }
    return runs["max_concurrent_runs"], per_tag


def _step_errors(deployment) -> list[str]:
    """The user-code error of every failed step, from the event log in Postgres."""
    rows = deployment.postgres.query(
        "SELECT step_key, event FROM event_logs WHERE dagster_event_type = 'STEP_FAILURE'"
    )
    messages = []
    for step, event in rows:
        found = re.findall(
            r'"cls_name": "(\w+)", "context": [^,]*, "message": "([^"]{0,400})', event
        )
        messages.append(f"{step}: {found[:3] or event[:400]}")
    return messages


def test_metadata_job_and_backfill_of_every_plate_succeed(deployment):
    assert deployment.backfill_status in ("COMPLETED", "COMPLETED_SUCCESS"), (
        deployment.backfill_status,
        _step_errors(deployment),
        deployment.stack.logs_tail(),
    )
    rows = deployment.runs()
    assert {row[1] for row in rows} == {"SUCCESS"}, rows
    backfill_runs = [row for row in rows if row[4] == deployment.backfill_id]
    assert sorted(row[2] for row in backfill_runs) == deployment.plates
    assert any(row[0] == deployment.metadata_run_id for row in rows)


def test_runs_never_exceed_the_concurrency_limits(deployment):
    max_runs, per_tag = _run_limits(deployment.stack.instance_config)
    watcher = deployment.watcher
    assert watcher.polls > 20  # the watcher really sampled the whole backfill
    assert 1 <= watcher.max_in_progress <= max_runs
    assert max(watcher.max_per_partition.values()) <= per_tag["dagster/partition"]
    assert all(n <= per_tag["imaging_assets/source"] for n in watcher.max_per_source.values())
    assert not [row for row in deployment.runs() if row[1] in IN_PROGRESS]


def test_daemon_restart_mid_backfill_repeats_no_plate(deployment):
    assert deployment.stack.daemon_restarts == 1
    assert deployment.runs_started_before_restart >= 1
    assert deployment.daemon_stop_code is not None  # it exited on SIGTERM (no SIGKILL needed)
    started = deployment.postgres.query(
        "SELECT r.start_time FROM runs r JOIN run_tags t ON t.run_id = r.run_id "
        "WHERE t.key = 'dagster/backfill' AND t.value = %s",
        (deployment.backfill_id,),
    )
    # the new daemon did part of the work: it launched at least one queued plate run
    assert any(start > deployment.restarted_at for (start,) in started), (
        deployment.restarted_at,
        started,
    )
    rows = deployment.runs()
    for partition, runs in runs_by_partition(rows).items():
        assert len(runs) == 1, (partition, runs)
    counts = deployment.postgres.query(
        "SELECT value, count(*) FROM run_tags WHERE key = 'dagster/partition' GROUP BY value"
    )
    assert sorted(counts) == [(plate, 1) for plate in deployment.plates]
    # the restarted daemon is healthy by the compose healthcheck (dagster-daemon liveness-check)
    checked = deployment.stack.healthcheck(DAEMON_SERVICE)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_instance_state_lives_in_postgres(deployment):
    pg = deployment.postgres
    tables = {row[0] for row in pg.query("SELECT tablename FROM pg_tables")}
    assert {"runs", "event_logs", "dynamic_partitions", "bulk_actions"} <= tables
    (runs,) = pg.query("SELECT count(*) FROM runs")[0]
    assert runs == len(deployment.plates) + 1
    (events,) = pg.query("SELECT count(*) FROM event_logs")[0]
    assert events > 100
    materialized = pg.query(
        "SELECT DISTINCT partition FROM event_logs "
        "WHERE dagster_event_type = 'ASSET_MATERIALIZATION' AND asset_key LIKE %s",
        ('%"site_images"%',),
    )
    assert sorted(row[0] for row in materialized) == deployment.plates
    partitions = pg.query(
        "SELECT partition FROM dynamic_partitions WHERE partitions_def_name = 'plates'"
    )
    assert sorted(row[0] for row in partitions) == deployment.plates
    (backfills,) = pg.query("SELECT count(*) FROM bulk_actions")[0]
    assert backfills == 1
    # nothing went to a SQLite file under DAGSTER_HOME
    assert not list(deployment.stack.home.rglob("*.db"))


def test_compute_logs_land_in_the_s3_bucket(deployment):
    config = load_yaml(deployment.stack.home / "dagster.yaml")["compute_logs"]
    assert config["class"] == "S3ComputeLogManager"
    prefix = deployment.stack.env["DAGSTER_COMPUTE_LOGS_PREFIX"]
    client = deployment.s3_server.boto3_client()
    keys = [
        item["Key"]
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=deployment.bucket, Prefix=f"{prefix}/"
        )
        for item in page.get("Contents", [])
    ]
    run_ids = [row[0] for row in deployment.runs()]
    for run_id in run_ids:
        assert any(run_id in key for key in keys), (run_id, keys[:20])
    assert any(key.endswith(".err") for key in keys)
