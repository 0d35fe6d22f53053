"""plate_backfill_schedule on a real temporary instance: missing and stale plates, bounded."""

from __future__ import annotations

from dagster import AssetMaterialization, build_schedule_context, instance_for_test

from imaging_assets.assets.images import SITE_IMAGES, recipes_code_version
from imaging_assets.partitions import PLATES_PARTITIONS_NAME
from imaging_assets.schedules import plate_backfill_schedule


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
        requests = plate_backfill_schedule(build_schedule_context(instance=instance))
        assert [r.partition_key for r in requests] == ["source_2__C", "source_1__B"]
        assert requests[0].tags["imaging_assets/source"] == "source_2"
