"""plate_backfill_schedule on a real temporary instance: missing and stale plates, bounded."""

from __future__ import annotations

from datetime import UTC, datetime

from dagster import AssetMaterialization, build_schedule_context, instance_for_test

from imaging_assets.defs.jump.images import SITE_IMAGES, recipes_code_version
from imaging_assets.defs.jump.partitions import PLATES_PARTITIONS_NAME
from imaging_assets.defs.jump.schedules import plate_backfill_schedule


def test_schedule_requests_missing_then_stale_plates():
    keys = ["source_1__A", "source_1__B", "source_2__C"]
    with instance_for_test() as instance:
        instance.add_dynamic_partitions(PLATES_PARTITIONS_NAME, keys)
        current = recipes_code_version()
        for key, version in [("source_1__A", current), ("source_1__B", "an-old-recipe")]:
            instance.report_runless_asset_event(
                AssetMaterialization(
                    SITE_IMAGES, partition=key, tags={"dagster/code_version": version}
                )
            )
        tick = datetime(2026, 11, 24, 12, tzinfo=UTC)
        context = build_schedule_context(instance=instance, scheduled_execution_time=tick)
        requests = plate_backfill_schedule(context)
        assert [r.partition_key for r in requests] == ["source_2__C", "source_1__B"]
        assert requests[0].tags["imaging_assets/source"] == "source_2"


def test_a_plate_with_a_run_in_flight_is_not_requested_again():
    with instance_for_test() as instance:
        instance.add_dynamic_partitions(PLATES_PARTITIONS_NAME, ["source_1__A", "source_1__B"])
        from imaging_assets.definitions import defs

        job = defs.resolve_job_def("plate_job")
        instance.create_run_for_job(job, tags={"dagster/partition": "source_1__A"})  # NOT_STARTED
        tick = datetime(2026, 11, 24, 13, tzinfo=UTC)
        requests = plate_backfill_schedule(
            build_schedule_context(instance=instance, scheduled_execution_time=tick)
        )
        assert [r.partition_key for r in requests] == ["source_1__B"]


def test_a_plate_that_keeps_failing_backs_off_and_a_new_plate_still_runs():
    from dagster import DagsterRunStatus
    from dagster._core.test_utils import create_run_for_test

    from imaging_assets.defs.jump.schedules import plate_histories

    with instance_for_test() as instance:
        instance.add_dynamic_partitions(PLATES_PARTITIONS_NAME, ["source_1__A", "source_1__Z"])
        for _ in range(3):
            create_run_for_test(
                instance,
                job_name="plate_job",
                status=DagsterRunStatus.FAILURE,
                tags={"dagster/partition": "source_1__A"},
            )
        history = plate_histories(instance)
        assert history["source_1__A"].consecutive_failures == 3
        tick = datetime.now(UTC)  # the failures are minutes old: 3 failures wait 4 hours
        requests = plate_backfill_schedule(
            build_schedule_context(instance=instance, scheduled_execution_time=tick)
        )
        assert [r.partition_key for r in requests] == ["source_1__Z"]
        create_run_for_test(
            instance,
            job_name="plate_job",
            status=DagsterRunStatus.SUCCESS,
            tags={"dagster/partition": "source_1__A"},
        )
        assert "source_1__A" not in plate_histories(instance)  # a success clears the record


def test_the_batch_schedule_requests_the_same_plates_in_batches_of_one_source(monkeypatch):
    from imaging_assets.defs.common.batches import batch_run_config
    from imaging_assets.defs.jump import schedules

    monkeypatch.setattr(schedules, "PLATES_PER_RUN", 2)
    keys = ["source_1__A", "source_1__B", "source_1__C", "source_2__D"]
    with instance_for_test() as instance:
        instance.add_dynamic_partitions(PLATES_PARTITIONS_NAME, keys)
        tick = datetime(2026, 11, 24, 14, tzinfo=UTC)
        requests = schedules.plate_batch_backfill_schedule(
            build_schedule_context(instance=instance, scheduled_execution_time=tick)
        )
    assert [r.run_config for r in requests] == [
        batch_run_config(["source_1__A", "source_1__B"]),
        batch_run_config(["source_1__C"]),
        batch_run_config(["source_2__D"]),
    ]
    assert [r.tags["imaging_assets/source"] for r in requests] == [
        "source_1",
        "source_1",
        "source_2",
    ]
    assert len({r.run_key for r in requests}) == 3


def test_plates_listed_by_a_queued_batch_run_are_not_requested_again():
    from imaging_assets.defs.common.batches import batch_run_config
    from imaging_assets.defs.jump.schedules import plate_batch_backfill_schedule

    with instance_for_test() as instance:
        instance.add_dynamic_partitions(PLATES_PARTITIONS_NAME, ["source_1__A", "source_1__B"])
        from imaging_assets.definitions import defs

        batch_job = defs.resolve_job_def("plate_batch_job")
        instance.create_run_for_job(batch_job, run_config=batch_run_config(["source_1__A"]))
        tick = datetime(2026, 11, 24, 15, tzinfo=UTC)
        context = build_schedule_context(instance=instance, scheduled_execution_time=tick)
        for schedule in (plate_backfill_schedule, plate_batch_backfill_schedule):
            requests = schedule(context)
            keys = (
                [r.partition_key for r in requests]
                if schedule is plate_backfill_schedule
                else [
                    key
                    for r in requests
                    for key in r.run_config["ops"]["run_partitions"]["config"]["partitions"]
                ]
            )
            assert keys == ["source_1__B"], schedule.name
