"""new_plates_sensor against a real S3 server and a real (temporary) Dagster instance."""

from __future__ import annotations

import pytest
from dagster import SensorResult, SkipReason, build_sensor_context, instance_for_test

from imaging_assets.defs.common.resources import SourceResource
from imaging_assets.defs.jump.partitions import PLATES_PARTITIONS_NAME
from imaging_assets.defs.jump.sensors import new_plates_sensor
from imaging_assets.jump import layout

pytestmark = pytest.mark.s3


def _land(client, bucket: str, source: str, batch: str, plate: str) -> None:
    key = "cpg0016-jump/" + layout.load_data_csv_key(source, batch, plate)
    client.put_object(Bucket=bucket, Key=key, Body=b"Metadata_Plate\n")


def _tick(instance, source: SourceResource, cursor: str | None):
    """Evaluate the sensor once and apply its result the way the daemon does."""
    context = build_sensor_context(instance=instance, cursor=cursor, resources={"source": source})
    result = new_plates_sensor(context)
    if isinstance(result, SkipReason):
        return [], [], context.cursor
    assert isinstance(result, SensorResult)
    added = [k for r in result.dynamic_partitions_requests for k in r.partition_keys]
    instance.add_dynamic_partitions(PLATES_PARTITIONS_NAME, added)
    return added, [r.partition_key for r in result.run_requests], result.cursor


def test_sensor_adds_new_plates_once(s3_server, s3_bucket, monkeypatch):
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    client = s3_server.boto3_client()
    source = SourceResource(
        root=f"s3://{s3_bucket}/cpg0016-jump", endpoint_url=s3_server.endpoint_url
    )
    _land(client, s3_bucket, "source_4", "2021_04_26_Batch1", "BR00117035")
    with instance_for_test() as instance:
        instance.add_dynamic_partitions(PLATES_PARTITIONS_NAME, ["source_4__BR00117035"])
        _, _, cursor = _tick(instance, source, None)  # what was there before is known

        _land(client, s3_bucket, "source_9", "2024_01_01_BatchA", "PLATE_A1")
        _land(client, s3_bucket, "source_9", "2024_01_01_BatchA", "PLATE_A2")
        added, runs, cursor = _tick(instance, source, cursor)
        assert sorted(added) == sorted(runs) == ["source_9__PLATE_A1", "source_9__PLATE_A2"]

        added, runs, cursor = _tick(instance, source, cursor)
        assert added == runs == []

        _land(client, s3_bucket, "source_9", "2024_01_02_BatchB", "PLATE_B1")
        added, runs, cursor = _tick(instance, source, cursor)
        assert added == runs == ["source_9__PLATE_B1"]
        assert sorted(instance.get_dynamic_partitions(PLATES_PARTITIONS_NAME)) == [
            "source_4__BR00117035",
            "source_9__PLATE_A1",
            "source_9__PLATE_A2",
            "source_9__PLATE_B1",
        ]
