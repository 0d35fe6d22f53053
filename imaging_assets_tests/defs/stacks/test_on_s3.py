"""The stacks domain on a real S3-compatible server (SeaweedFS): paginated delimiter listings,
window reads from an S3 lake, and credentials that never reach the event log or the lake."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile
from dagster import instance_for_test, materialize

from imaging_assets.core.s3 import S3Settings
from imaging_assets.core.stores import S3Store
from imaging_assets.defs.common.stores import LakeResource
from imaging_assets.defs.stacks.assets import (
    STACKS_ASSETS,
    skeletons,
    specimen_manifest,
    zstack_projections,
    zstack_slices,
)
from imaging_assets.defs.stacks.resources import StackCollectionResource
from imaging_assets.demo.gallery.stacks import generate_stacks
from imaging_assets.read import open_lake

pytestmark = pytest.mark.s3


def test_collection_and_lake_on_s3(tmp_path, s3_server, s3_bucket, monkeypatch):
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    collection = generate_stacks(tmp_path / "collection")
    settings = S3Settings(endpoint_url=s3_server.endpoint_url)
    S3Store(f"s3://{s3_bucket}/brightfield", settings).upload_tree(collection.root)
    resources = {
        "stack_collection": StackCollectionResource(
            name="bf", root=f"s3://{s3_bucket}/brightfield", endpoint_url=s3_server.endpoint_url
        ),
        "lake": LakeResource(root=f"s3://{s3_bucket}/lake", endpoint_url=s3_server.endpoint_url),
    }
    with instance_for_test() as instance:
        first = materialize([specimen_manifest], instance=instance, resources=resources)
        meta = {
            k: v.value
            for k, v in first.get_asset_materialization_events()[0].materialization.metadata.items()
        }
        assert meta["specimens"] == 4 and meta["listing_requests"] == 6
        again = materialize([specimen_manifest], instance=instance, resources=resources)
        meta = {
            k: v.value
            for k, v in again.get_asset_materialization_events()[0].materialization.metadata.items()
        }
        assert meta["listing_requests"] == 2 and meta["specimens_listed"] == 0
        result = materialize(
            STACKS_ASSETS,
            selection=[zstack_slices, zstack_projections, skeletons],
            partition_key="neuron_002",
            instance=instance,
            resources=resources,
        )
        assert result.success
        records = instance.get_records_for_run(result.run_id).records
        logs = "\n".join(str(r.event_log_entry) for r in records)
        logs += "\n".join(
            str(r.event_log_entry) for r in instance.get_records_for_run(first.run_id).records
        )

    lake = open_lake(f"s3://{s3_bucket}/lake", storage_options=s3_server.storage_options())
    stack = lake.stack("neuron_002")
    raw = tifffile.imread(collection.slice_path("neuron_002", 5))
    np.testing.assert_array_equal(
        stack.window(z=5, y=slice(8, 77), x=slice(33, 120)), raw[8:77, 33:120]
    )
    assert stack.provenance["slices"][0]["raw_uri"].startswith(
        f"s3://{s3_bucket}/brightfield/neuron_002/"
    )
    assert stack.provenance["slices"][0]["raw_etag"]
    assert lake.skeleton("neuron_002").num_rows > 10

    secret = s3_server.secret_key
    assert secret not in logs and s3_server.access_key not in logs
    client = s3_server.boto3_client()
    found = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=s3_bucket, Prefix="lake/"):
        for entry in page.get("Contents", []):
            body = client.get_object(Bucket=s3_bucket, Key=entry["Key"])["Body"].read()
            if secret.encode() in body or s3_server.access_key.encode() in body:
                found.append(entry["Key"])
    assert found == []


def test_listing_is_paginated(tmp_path, s3_server, s3_bucket, monkeypatch):
    """More than one page (1,000 keys) of specimen folders and files is listed completely."""
    for name, value in s3_server.env().items():
        monkeypatch.setenv(name, value)
    from imaging_assets.stacks.layout import LayoutRules
    from imaging_assets.stacks.manifest import scan

    client = s3_server.boto3_client()
    for i in range(1005):
        client.put_object(Bucket=s3_bucket, Key=f"c/big/img-{i:04d}.tif", Body=b"x")
    client.put_object(Bucket=s3_bucket, Key="c/small/img-0000.tif", Body=b"x")
    store = S3Store(f"s3://{s3_bucket}/c", S3Settings(endpoint_url=s3_server.endpoint_url))
    result = scan(store, LayoutRules())
    rows = {r["specimen"]: r for r in result.manifest.specimens.to_pylist()}
    assert rows["big"]["slices"] == 1005 and rows["small"]["slices"] == 1
    assert result.requests == 1 + 2 + 1  # the root; big/ in two pages; small/
